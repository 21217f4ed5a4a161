use super::*;

use chrono::{TimeZone, Utc};

fn at(minute: u32) -> Timestamp {
    Utc.with_ymd_and_hms(2026, 12, 7, 12, minute, 0).unwrap()
}

fn seen(ip: &str, mac: Option<&str>, source: SightingSource, present: Option<u32>) -> Sighting {
    Sighting {
        address: ip.parse().unwrap(),
        mac: mac.map(|m| Mac::parse("mac", m).unwrap()),
        hostname: None,
        interface: Some("lan".into()),
        source,
        present_at: present.map(at),
    }
}

#[test]
fn mac_addresses_are_read_in_every_common_spelling_and_hostile_ones_refused() {
    let want = "00:1b:21:3a:4f:5c";
    for spelling in ["00:1B:21:3A:4F:5C", "00-1b-21-3a-4f-5c", "001b.213a.4f5c", "001b213a4f5c", "0:1b:21:3a:4f:5c"] {
        assert_eq!(Mac::parse("mac", spelling).unwrap().to_string(), want, "{spelling}");
    }
    for bad in ["", "00:1b:21:3a:4f", "00:1b:21:3a:4f:5c:7d", "zz:1b:21:3a:4f:5c", "001b.213a", "00:1b:21:3a:4f:5c;rm"]
    {
        assert_eq!(Mac::parse("mac", bad).unwrap_err().field, "mac", "{bad}");
    }
    assert!(Mac::parse("mac", "02:00:00:00:00:01").unwrap().locally_administered());
    assert!(Mac::parse("mac", "ff:ff:ff:ff:ff:ff").unwrap().is_group());
}

#[test]
fn sightings_merge_by_mac_and_presence_follows_the_idle_time() {
    let mut records = Vec::new();
    let mac = Some("00:1b:21:3a:4f:5c");
    merge(&mut records, &[seen("192.168.1.20", mac, SightingSource::DhcpLease, None)], at(0));
    assert_eq!(records.len(), 1);
    assert_eq!(records[0].presence(at(0), TimeDelta::minutes(10)), Presence::Offline, "a lease is not presence");
    merge(&mut records, &[seen("192.168.1.20", mac, SightingSource::Neighbour, Some(5))], at(5));
    merge(&mut records, &[seen("192.168.1.21", mac, SightingSource::Neighbour, Some(8))], at(8));
    assert_eq!(records.len(), 1, "one device with two addresses");
    let r = &records[0];
    assert_eq!(r.addresses.len(), 2);
    assert_eq!((r.first_seen, r.last_seen), (at(0), Some(at(8))));
    assert_eq!(r.sources, BTreeSet::from([SightingSource::DhcpLease, SightingSource::Neighbour]));
    assert_eq!(r.presence(at(17), TimeDelta::minutes(10)), Presence::Online);
    assert_eq!(r.presence(at(19), TimeDelta::minutes(10)), Presence::Offline);

    // Another device takes over one of the addresses: it leaves the first.
    merge(&mut records, &[seen("192.168.1.21", Some("00:1b:21:00:00:01"), SightingSource::Arp, Some(20))], at(20));
    assert_eq!(records.len(), 2);
    assert_eq!(records[0].addresses.len(), 1);
    // An address seen without a MAC joins the device that holds it.
    merge(&mut records, &[seen("192.168.1.20", None, SightingSource::Traffic, Some(30))], at(30));
    assert_eq!(records.len(), 2);
    assert_eq!(records[0].last_seen, Some(at(30)));
}

#[test]
fn the_three_lease_formats_are_read() {
    let dnsmasq = "1765112400 00:1b:21:3a:4f:5c 192.168.1.20 laptop 01:00:1b:21:3a:4f:5c\n\
                   1765112400 00:1b:21:00:00:02 192.168.1.22 * *\nduid 00:01:00:01\nbroken line\n";
    let (leases, skipped) = parse_leases(LeaseFormat::Dnsmasq, dnsmasq, Some("lan"));
    assert_eq!((leases.len(), skipped), (2, 1));
    assert_eq!(leases[0].hostname.as_deref(), Some("laptop"));
    assert_eq!(leases[1].hostname, None);
    let isc = "lease 192.168.1.30 {\n  starts 1 2026/12/07 10:00:00;\n  binding state active;\n  hardware ethernet \
               00:1b:21:3a:4f:60;\n  client-hostname \"printer\";\n}\nlease 192.168.1.31 {\n  binding state free;\n  \
               hardware ethernet 00:1b:21:3a:4f:61;\n}\n";
    let (leases, skipped) = parse_leases(LeaseFormat::Isc, isc, None);
    assert_eq!((leases.len(), skipped), (1, 1));
    assert_eq!(leases[0].hostname.as_deref(), Some("printer"));
    let kea = "address,hwaddr,client_id,valid_lifetime,expire,subnet_id,fqdn_fwd,fqdn_rev,hostname,state,user_context\n\
               192.168.1.40,00:1b:21:3a:4f:70,,3600,1765112400,1,0,0,nas,0,\n\
               192.168.1.41,00:1b:21:3a:4f:71,,3600,1765112400,1,0,0,old,2,\n";
    let (leases, skipped) = parse_leases(LeaseFormat::Kea, kea, None);
    assert_eq!((leases.len(), skipped), (1, 1));
    assert_eq!(leases[0].hostname.as_deref(), Some("nas"));
}

#[test]
fn vendors_come_from_the_longest_registered_block() {
    let mut oui = OuiRegistry::new();
    let added = oui.add_csv(
        "Registry,Assignment,Organization Name,Organization Address\n\
         MA-L,001B21,\"Intel Corporate\",Lot 8 Malaysia\n\
         MA-M,001B21A,\"Block Owner, Inc.\",Somewhere\n\
         MA-S,70B3D5123,Tiny Maker,Nowhere\n\
         MA-L,BAD,Broken,x\n",
    );
    assert_eq!(added, 3);
    let mac = |m: &str| Mac::parse("mac", m).unwrap();
    assert_eq!(oui.vendor(&mac("00:1b:21:3a:4f:5c")), Some("Intel Corporate"));
    assert_eq!(oui.vendor(&mac("00:1b:21:a0:00:01")), Some("Block Owner, Inc."));
    assert_eq!(oui.vendor(&mac("70:b3:d5:12:30:01")), Some("Tiny Maker"));
    assert_eq!(oui.vendor(&mac("02:1b:21:3a:4f:5c")), None, "locally administered");
    assert_eq!(oui.vendor(&mac("00:00:5e:00:00:01")), None);
}
