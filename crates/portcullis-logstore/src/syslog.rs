//! The syslog listener: UDP datagrams and TCP streams (RFC 6587 octet counting or newline framing) carrying RFC
//! 3164 or RFC 5424 messages; filterlog messages are stored, others counted and dropped.
