//! Traffic mirrors on pfSense. pf can copy packets (`dup-to`), but pfSense never writes it and pfRest has no
//! field for it, so by default a mirror is `unsupported`, with the alternatives.

use portcullis_core::firewall::{BackendError, ErrorCode, UnsupportedField};
use portcullis_core::mirror::Mirror;

/// Why pfRest cannot mirror, and what to do instead.
pub fn unsupported() -> UnsupportedField {
    UnsupportedField {
        field: "interface".into(),
        why: "pfRest has no field for pf's dup-to, and pfSense never writes one".into(),
        instead: "copy the traffic with a switch SPAN port, or opt in per target with allow_shell: true (admin \
                  only, root-equivalent: rules loaded into the anchor userrules/portcullis_mirror through pfRest's \
                  command prompt)"
            .into(),
    }
}

/// The error a plan that starts a mirror gets on a target that cannot carry one out.
pub fn unsupported_error(mirror: &Mirror) -> BackendError {
    let u = unsupported();
    BackendError::new(ErrorCode::Unsupported, format!("cannot start mirror {}: {}", mirror.mirror_id, u.why))
        .with_hint(u.instead)
}
