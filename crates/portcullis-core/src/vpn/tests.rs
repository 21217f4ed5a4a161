use chrono::{TimeDelta, TimeZone, Utc};

use super::*;
use crate::plan::{self, verify};

fn now() -> Timestamp {
    Utc.with_ymd_and_hms(2026, 12, 7, 12, 0, 0).single().expect("time")
}

fn server() -> VpnServer {
    VpnServer::new("wg0", VpnType::Wireguard, "10.8.0.1/24".parse().expect("net"))
}

const KEY: &str = "xTIBA5rboUvnH4htodjb6e697QjLERt1NAB4mZqp8Dg=";

fn ask(name: &str, ip: Option<&str>) -> VpnAsk {
    VpnAsk {
        certificate: None,
        server: server(),
        username: name.into(),
        public_key: Some(KEY.into()),
        address: ip.map(|a| a.parse().expect("ip")),
        expires_at: None,
    }
}

fn applied(state: &RuleSet, p: &ChangePlan) -> RuleSet {
    plan::carry_out(state, p, plan::Ids::Placeholders, plan::Entries::Apply).expect("carry out").state
}

#[test]
fn a_user_gets_its_address_granted_and_deleting_it_takes_both_away() {
    let state = RuleSet::default();
    let p = plan_create(&state, &ask("remote_user", Some("10.8.0.100")), now()).expect("plan");
    assert!(p.summary.contains("remote_user") && p.summary.contains("10.8.0.100"), "{}", p.summary);
    let after = applied(&state, &p);
    verify(&p, &crate::firewall::Applied::default(), &after).expect("verified");
    assert_eq!(after.vpn_accounts.len(), 1);
    let grants = after.alias(plan::GRANT_ALIAS).expect("grant list");
    assert_eq!(grants.entries[0].value, "10.8.0.100");

    let d = plan_delete(&after, "remote_user", now()).expect("delete");
    let gone = applied(&after, &d);
    assert!(gone.vpn_accounts.is_empty());
    assert!(gone.alias(plan::GRANT_ALIAS).is_none_or(|a| a.entries.is_empty()));
    let undo = plan::invert(&d, &crate::firewall::Applied::default(), &after, &gone);
    assert_eq!(applied(&gone, &undo).vpn_accounts, after.vpn_accounts, "a rollback restores the user");
}

#[test]
fn addresses_outside_taken_or_reserved_and_bad_names_are_refused_naming_the_field() {
    let state =
        applied(&RuleSet::default(), &plan_create(&RuleSet::default(), &ask("a", Some("10.8.0.5")), now()).expect("p"));
    let field = |r: FieldResult<ChangePlan>| r.expect_err("refused").field;
    let mut other = ask("b", Some("10.8.0.5"));
    other.public_key = Some("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=".into());
    assert_eq!(field(plan_create(&state, &other, now())), "static_ip", "taken");
    other.address = Some("10.9.0.5".parse().expect("ip"));
    assert_eq!(field(plan_create(&state, &other, now())), "static_ip", "outside");
    for reserved in ["10.8.0.1", "10.8.0.0", "10.8.0.255"] {
        other.address = Some(reserved.parse().expect("ip"));
        assert_eq!(field(plan_create(&state, &other, now())), "static_ip", "{reserved}");
    }
    assert_eq!(field(plan_create(&state, &ask("a", None), now())), "username", "exists");
    other.address = None;
    other.public_key = Some(KEY.into());
    assert_eq!(field(plan_create(&state, &other, now())), "public_key", "same key");
    for bad in ["", "a b", "../etc", "x;rm", "-n", &"a".repeat(33)] {
        assert_eq!(check_username("username", bad).expect_err(bad).field, "username");
    }
    assert!(check_username("username", "remote_user.2-x").is_ok());
    assert!(check_wireguard_key("k", KEY).is_ok());
    for bad in ["", "abc", &KEY.replace('=', "A"), "xTIBA5rboUvnH4htodjb6e697QjLERt1NAB4mZqp8Dh="] {
        assert!(check_wireguard_key("k", bad).is_err(), "{bad}");
    }
}

#[test]
fn free_addresses_skip_the_server_and_taken_ones_and_expired_users_are_removed() {
    let mut state = RuleSet::default();
    let mut first = ask("a", None);
    first.expires_at = Some(now() + TimeDelta::hours(1));
    let p = plan_create(&state, &first, now()).expect("p");
    state = applied(&state, &p);
    assert_eq!(state.vpn_accounts[0].address.to_string(), "10.8.0.2");
    let mut second = ask("b", None);
    second.public_key = None;
    let p = plan_create(&state, &second, now()).expect("p");
    state = applied(&state, &p);
    assert_eq!(state.vpn_accounts[1].address.to_string(), "10.8.0.3");
    assert_eq!(next_account_end(&state), first.expires_at);
    assert!(plan::plan_expiry(&state, now()).is_none());
    let due = plan::plan_expiry(&state, now() + TimeDelta::hours(2)).expect("due");
    assert!(due.summary.contains("remove 1 VPN users"), "{}", due.summary);
    let after = applied(&state, &due);
    assert_eq!(after.vpn_accounts.iter().map(|u| u.username.as_str()).collect::<Vec<_>>(), ["b"]);
    let grants = after.alias(plan::GRANT_ALIAS).expect("grants");
    assert_eq!(
        grants.entries.iter().map(|e| e.value.as_str()).collect::<Vec<_>>(),
        ["10.8.0.3"],
        "a's grant expired with it"
    );
}
