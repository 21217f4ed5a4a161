//! `portcullis geoip install FILE` and `portcullis geoip info`: the offline country database.

use std::path::Path;

use anyhow::Context;
use portcullis_geo::{CountryDb, DatabaseInfo};

use crate::config::Config;

/// Checks `file` whole and puts it where `serve` and `call` find it (`<data_dir>/geoip/country.mmdb`), replacing
/// the one there in one rename, so a reader sees the old file or the new, never part of one.
pub async fn install(config: &Config, file: &Path) -> anyhow::Result<i32> {
    let db = CountryDb::open(file).with_context(|| format!("nothing was installed ({})", file.display()))?;
    let target = config.installed_geoip_database();
    let dir = target.parent().context("the install path has no directory")?;
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let partial = dir.join(".country.mmdb.partial");
    std::fs::copy(file, &partial).with_context(|| format!("copying {} to {}", file.display(), partial.display()))?;
    // What was checked is what is installed: the copy is opened again before it takes the old file's place.
    CountryDb::open(&partial).context("the copy differs from the file checked; nothing was installed")?;
    std::fs::rename(&partial, &target).with_context(|| format!("moving the database to {}", target.display()))?;
    println!("installed {}", target.display());
    print_info(&DatabaseInfo { path: target.clone(), ..db.info().clone() });
    if let Some(configured) = &config.geoip.database {
        println!("note: geoip.database in the config ({}) is used instead of the installed file", configured.display());
        return Ok(0);
    }
    refresh_live_blocks(config).await
}

/// Brings every target's live geo blocks to the new data: one `refresh_geo_blocks` call per target, through the
/// pipeline as the local principal, audited like any change.
async fn refresh_live_blocks(config: &Config) -> anyhow::Result<i32> {
    let app = crate::app::App::open(config.clone())?;
    let user = std::env::var("USER").ok().map(|u| format!("cli:{u}"));
    let mut code = 0;
    for target in app.service.target_names() {
        let ctx =
            portcullis_guard::CallContext::new(app.local_principal(), portcullis_guard::Transport::Cli, user.clone());
        let args = serde_json::json!({"target": target});
        match app.service.call(&ctx, "refresh_geo_blocks", args).await {
            Ok(done) => println!("{target}: {}", done["summary"].as_str().unwrap_or("geo blocks refreshed")),
            Err(e) if e.field.as_deref() == Some("target") => println!("{target}: no geo blocks to refresh"),
            Err(e) if e.field.as_deref() == Some("geoip") => println!("{target}: geo blocks already hold this data"),
            Err(e) => {
                println!("{target}: geo blocks not refreshed: {} ({})", e.message, e.code.as_str());
                println!("  run `portcullis call refresh_geo_blocks target={target}` as an admin to refresh them");
                code = 4;
            }
        }
    }
    Ok(code)
}

/// Prints the database in use: its type, data date and attribution.
pub fn info(config: &Config) -> anyhow::Result<i32> {
    let Some((path, _)) = config.geoip_database() else {
        println!(
            "no country database is installed ({} does not exist and geoip.database is not set)",
            config.installed_geoip_database().display()
        );
        println!("install one with `portcullis geoip install FILE`; see docs/GEO.md");
        return Ok(2);
    };
    let db = CountryDb::open(&path).with_context(|| format!("{}", path.display()))?;
    print_info(db.info());
    Ok(0)
}

fn print_info(info: &DatabaseInfo) {
    println!("database:    {}", info.path.display());
    println!("type:        {} ({} layout, IPv{})", info.database_type, layout_name(info), info.ip_version);
    println!("built:       {} (data date {})", info.build_time.to_rfc3339(), info.data_date);
    println!("size:        {} bytes, {} search tree nodes", info.size_bytes, info.node_count);
    println!("attribution: {}", info.attribution);
}

fn layout_name(info: &DatabaseInfo) -> &'static str {
    match info.layout {
        portcullis_geo::Layout::DbIp => "DB-IP country_code",
        portcullis_geo::Layout::GeoLite2 => "GeoLite2 country.iso_code",
    }
}
