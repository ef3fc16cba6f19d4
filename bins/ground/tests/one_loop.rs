//! `sarlink-ground load --one-loop`: the simulated drones on one event loop deliver every
//! record exactly once, through a clean link and through one that cuts connections; and a
//! ground with more drones than its dashboard shows counts the others.

mod common;

use std::process::Command;
use std::time::Duration;

use common::{clean, free_port, ground, ground_bin, http_get, wait_for};

/// Runs the load tool and returns its exit status and its output.
fn load(args: &[&str]) -> (bool, String) {
    let mut c = clean(Command::new(ground_bin()));
    c.args(["load", "--one-loop", "--interval", "1"]).args(args);
    let out = c.output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    (out.status.success(), text)
}

/// The summary's "records produced P, received R, lost L, duplicates D".
fn counts(summary: &str) -> (u64, u64, u64, u64) {
    let line = summary
        .lines()
        .find(|l| l.contains("records produced"))
        .unwrap_or_else(|| panic!("no summary in:\n{summary}"));
    let number = |key: &str| -> u64 {
        let at = line
            .find(key)
            .unwrap_or_else(|| panic!("no {key} in {line}"))
            + key.len();
        line[at..]
            .trim_start()
            .split(|c: char| !c.is_ascii_digit())
            .next()
            .unwrap()
            .parse()
            .unwrap()
    };
    (
        number("records produced"),
        number("received"),
        number("lost"),
        number("duplicates"),
    )
}

#[test]
fn fifty_drones_on_one_loop_deliver_every_record_once() {
    let (ok, out) = load(&["--drones", "50", "--seconds", "3"]);
    let (produced, received, lost, duplicates) = counts(&out);
    assert!(ok, "the load run failed:\n{out}");
    assert!(produced >= 50 * 20, "too few records produced:\n{out}");
    assert_eq!((received, lost, duplicates), (produced, 0, 0), "{out}");
}

#[test]
fn drones_on_one_loop_reconnect_through_cut_connections_and_lose_nothing() {
    let (ok, out) = load(&["--drones", "10", "--seconds", "6", "--drop-percent", "20"]);
    let (produced, received, lost, duplicates) = counts(&out);
    assert!(ok, "the load run failed:\n{out}");
    assert!(
        out.contains("disconnects") && !out.contains("disconnects 0,"),
        "no connection was cut, so reconnection was not exercised:\n{out}"
    );
    assert_eq!((received, lost, duplicates), (produced, 0, 0), "{out}");
}

/// 300 drones against a separately started ground, whose dashboard shows 256: every
/// publication shows 256 streaming drones and counts the other 44 as hidden, both while the
/// dashboard fills and once the drones it shows are settled (the ground then builds only
/// their views).
#[test]
fn a_dashboard_full_of_drones_shows_256_and_counts_the_others_hidden() {
    let (port, http) = (free_port(), free_port());
    let web = format!("127.0.0.1:{http}");
    let _ground = ground(
        port,
        &[
            "--http",
            &web,
            "--max-clients",
            "400",
            "--max-handshakes-per-addr",
            "400",
        ],
    );
    let target = format!("127.0.0.1:{port}");
    let (ok, out) = load(&[
        "--target",
        &target,
        "--drones",
        "300",
        "--rate",
        "2",
        "--seconds",
        "3",
    ]);
    assert!(ok, "load failed:\n{out}");
    wait_for(
        "a publication of all 300 drones",
        Duration::from_secs(20),
        || {
            let Some((_, body)) = http_get(&web, "/api/state") else {
                return false;
            };
            let v: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
            let live = &v["live"];
            let shown = live["drones"].as_array().cloned().unwrap_or_default();
            let streaming = shown.iter().all(|d| {
                d["node"].as_str().is_some_and(|n| n.starts_with("load-"))
                    && d["drone_rx"]["rssi"].is_number()
            });
            shown.len() == 256 && streaming && live["hidden"] == 44
        },
    );
}
