//! The MCP stdio transport: newline-delimited JSON-RPC, like rmcp's own `AsyncRwTransport`, except that a line
//! which does not decode is answered with a JSON-RPC error (`jsonrpc::decode`) instead of being dropped, so no
//! client waits forever. Lines are bounded (`MAX_LINE_BYTES`, rmcp's own default): a longer one is discarded as it
//! is read, and answered with an error carrying the id found in its first bytes.

use std::sync::Arc;

use rmcp::RoleServer;
use rmcp::service::{RxJsonRpcMessage, TxJsonRpcMessage};
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::sync::Mutex;

use crate::jsonrpc::{self, Decoded, Refusal};

/// The longest line accepted (rmcp's `DEFAULT_MAX_LINE_LENGTH`).
pub const MAX_LINE_BYTES: usize = 16 * 1024 * 1024;

pub struct LineTransport<R, W> {
    read: BufReader<R>,
    /// The line read so far; kept across a cancelled `receive` (rmcp polls it inside a `select!`).
    line: Vec<u8>,
    /// Set while the rest of an oversized line is being discarded.
    oversized: bool,
    max_line: usize,
    write: Arc<Mutex<W>>,
}

enum LineRead {
    Line,
    Oversized,
    Eof,
}

impl<R, W> LineTransport<R, W>
where
    R: AsyncRead + Send + Unpin,
    W: AsyncWrite + Send + Unpin + 'static,
{
    pub fn new(read: R, write: W) -> Self {
        Self::with_max_line(read, write, MAX_LINE_BYTES)
    }

    pub fn with_max_line(read: R, write: W, max_line: usize) -> Self {
        Self {
            read: BufReader::new(read),
            line: Vec::new(),
            oversized: false,
            max_line,
            write: Arc::new(Mutex::new(write)),
        }
    }

    /// Reads up to and including the next newline into `self.line`, never letting it grow past `max_line`.
    /// Cancellation-safe: bytes are consumed from the buffer only once they are copied.
    async fn read_line(&mut self) -> std::io::Result<LineRead> {
        loop {
            let buf = self.read.fill_buf().await?;
            if buf.is_empty() {
                return Ok(LineRead::Eof);
            }
            let (n, found) = match buf.iter().position(|&b| b == b'\n') {
                Some(p) => (p + 1, true),
                None => (buf.len(), false),
            };
            if !self.oversized {
                if self.line.len() + n > self.max_line {
                    let room = self.max_line.saturating_sub(self.line.len());
                    self.line.extend_from_slice(&buf[..room.min(n)]);
                    self.oversized = true;
                } else {
                    self.line.extend_from_slice(&buf[..n]);
                }
            }
            self.read.consume(n);
            if found {
                return Ok(if std::mem::take(&mut self.oversized) { LineRead::Oversized } else { LineRead::Line });
            }
        }
    }

    /// Answers a refused line. The write runs on its own task so that a cancelled `receive` never leaves half
    /// a line on stdout.
    fn answer(&self, refusal: &Refusal) {
        tracing::debug!(code = refusal.code, id = ?refusal.id, "refused an incoming message: {}", refusal.message);
        if !refusal.answer {
            return;
        }
        let write = self.write.clone();
        let line = refusal.line();
        tokio::spawn(async move {
            let mut w = write.lock().await;
            if let Err(e) = async {
                w.write_all(&line).await?;
                w.flush().await
            }
            .await
            {
                tracing::debug!("could not answer a refused message: {e}");
            }
        });
    }
}

impl<R, W> rmcp::transport::Transport<RoleServer> for LineTransport<R, W>
where
    R: AsyncRead + Send + Unpin,
    W: AsyncWrite + Send + Unpin + 'static,
{
    type Error = std::io::Error;

    fn send(
        &mut self,
        item: TxJsonRpcMessage<RoleServer>,
    ) -> impl Future<Output = Result<(), Self::Error>> + Send + 'static {
        let write = self.write.clone();
        let line = serde_json::to_vec(&item).map(|mut bytes| {
            bytes.push(b'\n');
            bytes
        });
        async move {
            let line = line.map_err(std::io::Error::other)?;
            let mut w = write.lock().await;
            w.write_all(&line).await?;
            w.flush().await
        }
    }

    async fn receive(&mut self) -> Option<RxJsonRpcMessage<RoleServer>> {
        loop {
            let read = match self.read_line().await {
                Ok(read) => read,
                Err(e) => {
                    tracing::error!("error reading stdin: {e}");
                    return None;
                }
            };
            match read {
                LineRead::Eof => return None,
                LineRead::Oversized => {
                    let refusal = Refusal::too_large(&self.line, self.max_line);
                    self.line.clear();
                    self.answer(&refusal);
                }
                LineRead::Line => {
                    let line = self.line.strip_suffix(b"\n").unwrap_or(&self.line);
                    let line = line.strip_suffix(b"\r").unwrap_or(line);
                    if line.iter().all(u8::is_ascii_whitespace) {
                        self.line.clear();
                        continue;
                    }
                    let decoded = jsonrpc::decode(line);
                    self.line.clear();
                    match decoded {
                        Decoded::Message(message) => return Some(*message),
                        Decoded::Refused(refusal) => self.answer(&refusal),
                    }
                }
            }
        }
    }

    async fn close(&mut self) -> Result<(), Self::Error> {
        self.write.lock().await.shutdown().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rmcp::transport::Transport;
    use serde_json::Value;
    use tokio::io::AsyncReadExt;

    /// Feeds `input` to a transport and gives what it received and what it answered on its own.
    async fn run(input: Vec<u8>, max_line: usize) -> (Vec<RxJsonRpcMessage<RoleServer>>, Vec<Value>) {
        let (mut out_read, out_write) = tokio::io::duplex(1 << 20);
        let mut transport = LineTransport::with_max_line(std::io::Cursor::new(input), out_write, max_line);
        let mut received = Vec::new();
        while let Some(m) = transport.receive().await {
            received.push(m);
        }
        // Let the spawned answers finish, then close the writer.
        tokio::task::yield_now().await;
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        transport.close().await.unwrap();
        drop(transport);
        let mut text = String::new();
        out_read.read_to_string(&mut text).await.unwrap();
        (received, text.lines().map(|l| serde_json::from_str(l).unwrap()).collect())
    }

    #[tokio::test]
    async fn undecodable_lines_are_answered_and_later_lines_still_received() {
        let deep = format!(
            r#"{{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{{"name":"x","arguments":{{"a":{}1{}}}}}}}"#,
            "[".repeat(200),
            "]".repeat(200)
        );
        let mut input = Vec::new();
        for line in [deep.as_bytes(), b"{\"jsonrpc\":\"2.0\",\"id\":2,", b"\xff\xfe", b"[1,2]", b"", b"  \r"] {
            input.extend_from_slice(line);
            input.push(b'\n');
        }
        input.extend_from_slice(b"{\"jsonrpc\":\"2.0\",\"id\":3,\"method\":\"ping\"}\r\n");
        let (received, answers) = run(input, MAX_LINE_BYTES).await;
        assert_eq!(received.len(), 1, "{received:?}");
        let codes: Vec<(Value, i64)> =
            answers.iter().map(|a| (a["id"].clone(), a["error"]["code"].as_i64().unwrap())).collect();
        assert_eq!(
            codes,
            vec![
                (Value::from(1), jsonrpc::INVALID_PARAMS),
                (Value::from(2), jsonrpc::PARSE_ERROR),
                (Value::Null, jsonrpc::PARSE_ERROR),
                (Value::Null, jsonrpc::INVALID_REQUEST),
            ]
        );
    }

    #[tokio::test]
    async fn an_oversized_line_is_answered_and_the_next_one_received() {
        let mut input =
            format!(r#"{{"jsonrpc":"2.0","id":8,"method":"tools/call","params":{{"name":"{}"}}}}"#, "x".repeat(500))
                .into_bytes();
        input.push(b'\n');
        input.extend_from_slice(b"{\"jsonrpc\":\"2.0\",\"id\":9,\"method\":\"ping\"}\n");
        let (received, answers) = run(input, 100).await;
        assert_eq!(received.len(), 1);
        assert_eq!(answers.len(), 1);
        assert_eq!(answers[0]["id"], 8);
        assert_eq!(answers[0]["error"]["code"], jsonrpc::INVALID_REQUEST);
    }
}
