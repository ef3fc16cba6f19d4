//! The real `sarlink-drone` binary's configuration handling: precedence and errors.

use std::process::Command;

fn drone() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_sarlink-drone"));
    // Start from a clean slate: no SARLINK_* from the environment running the tests.
    for (k, _) in std::env::vars() {
        if k.starts_with("SARLINK_") {
            c.env_remove(k);
        }
    }
    c
}

fn temp_file(name: &str, text: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("sarlink-drone-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

fn resolved(c: &mut Command) -> String {
    let out = c.arg("--print-config").output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn precedence_is_cli_then_environment_then_file_then_default() {
    let file = temp_file(
        "p.toml",
        "rate = 2\nnode = \"from-file\"\nconnect = \"10.0.0.1:9\"\n",
    );
    let defaults = resolved(&mut drone());
    assert!(
        defaults.contains("rate = \"10\"  # default\n")
            && defaults.contains("connect = \"127.0.0.1:7355\"  # default"),
        "{defaults}"
    );
    let from_file = resolved(drone().arg("--config").arg(&file));
    assert!(
        from_file.contains("rate = \"2\"  # from config file")
            && from_file.contains("node = \"from-file\"  # from config file"),
        "{from_file}"
    );
    let from_env = resolved(drone().arg("--config").arg(&file).env("SARLINK_RATE", "5"));
    assert!(
        from_env.contains("rate = \"5\"  # from environment variable SARLINK_RATE")
            && from_env.contains("node = \"from-file\""),
        "{from_env}"
    );
    let from_cli = resolved(
        drone()
            .arg("--config")
            .arg(&file)
            .env("SARLINK_RATE", "5")
            .args(["--rate", "7"]),
    );
    assert!(
        from_cli.contains("rate = \"7\"  # from command line"),
        "{from_cli}"
    );
}

/// The value lines of a `--print-config` output, without the origin comments.
fn values(toml: &str) -> Vec<String> {
    toml.lines()
        .filter(|l| !l.starts_with('#'))
        .map(|l| l.split("  # ").next().unwrap().to_owned())
        .collect()
}

#[test]
fn print_config_is_toml_that_config_accepts_unchanged() {
    let printed = resolved(drone().args([
        "--rate",
        "7",
        "--node",
        "odd \"name\", with = signs",
        "--frequency",
        "121.5M",
        "--quiet",
    ]));
    let file = temp_file("printed.toml", &printed);
    let again = resolved(drone().arg("--config").arg(&file));
    assert_eq!(values(&again), values(&printed), "{printed}\n---\n{again}");
    assert!(again.contains("# from config file"), "{again}");
}

#[test]
fn bad_values_are_errors_naming_the_key_and_where_it_came_from() {
    let cases: Vec<(Command, &[&str])> = vec![
        (
            {
                let mut c = drone();
                c.env("SARLINK_RATE", "fast");
                c
            },
            &["rate", "SARLINK_RATE"],
        ),
        (
            {
                let mut c = drone();
                c.args(["--frequency", "lots"]);
                c
            },
            &["frequency", "command line"],
        ),
        (
            {
                let mut c = drone();
                c.args(["--source", "usb"]);
                c
            },
            &["source"],
        ),
        (
            {
                let mut c = drone();
                c.arg("--config")
                    .arg(temp_file("bad.toml", "sample_rate = \"9G\"\n"));
                c
            },
            &["sample_rate", "bad.toml"],
        ),
        (
            {
                let mut c = drone();
                c.arg("--config").arg(temp_file("typo.toml", "rat = 5\n"));
                c
            },
            &["unknown key", "rat"],
        ),
        (
            {
                let mut c = drone();
                c.args(["--key-file", "/nonexistent/key"]);
                c
            },
            &["key_file", "/nonexistent/key"],
        ),
        (
            {
                let mut c = drone();
                c.args(["--recovery-cpu", "90"]);
                c
            },
            &["recovery_cpu", "command line", "below high_pressure"],
        ),
        (
            {
                let mut c = drone();
                c.env("SARLINK_THERMAL_STEPS", "80,70,85");
                c
            },
            &["thermal_steps", "SARLINK_THERMAL_STEPS", "ascending"],
        ),
        (
            {
                let mut c = drone();
                c.args(["--resource-interval", "10ms"]);
                c
            },
            &["resource_interval", "at least 100ms"],
        ),
    ];
    for (mut c, needles) in cases {
        let out = c.arg("--print-config").output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{err}");
        for n in needles {
            assert!(err.contains(n), "{n:?} not in {err:?}");
        }
    }
}

#[test]
fn rtl_433_habits_short_flags_gain_auto_and_a_refused_bare_zero() {
    let printed = resolved(drone().args(["-f", "433.92M", "-s", "250k", "-g", "auto", "-p", "-3"]));
    for line in [
        "frequency = \"433.92M\"  # from command line",
        "sample_rate = \"250k\"  # from command line",
        "gain = \"auto\"  # from command line",
        "ppm = \"-3\"  # from command line",
    ] {
        assert!(printed.contains(line), "{line} in\n{printed}");
    }
    let manual_zero = resolved(drone().args(["--gain", "0dB"]));
    assert!(manual_zero.contains("gain = \"0dB\""), "{manual_zero}");
    for (args, says) in [
        (vec!["--gain", "0"], "ambiguous"),
        (vec!["--frequency", "3G"], "outside what an RTL-SDR tunes"),
        (vec!["--ppm", "5000"], "-1000 to 1000"),
    ] {
        let out = drone().args(&args).arg("--print-config").output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(says), "{args:?}: {err}");
    }
    // A recording is not tuned: any frequency in it may be measured.
    assert!(
        resolved(drone().args(["--source", "file:x_433.92M_250k.cu8", "-f", "3G"]))
            .contains("frequency = \"3G\"")
    );
}

#[test]
fn a_bad_mavlink_url_is_refused_at_start_and_good_ones_print_back() {
    for (url, why) in [
        ("udp:127.0.0.1:14550", "is not a MAVLink URL"),
        ("udpin:0.0.0.0", "expected HOST:PORT"),
        ("serial:/dev/ttyACM0", "expected serial:DEVICE:BAUD"),
    ] {
        let out = drone().args(["--mavlink", url]).output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{url}: {err}");
        assert!(
            err.contains("`mavlink`") && err.contains(why),
            "{url}: {err}"
        );
    }
    let out = drone().args(["--mavlink-component", "0"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let printed = resolved(drone().env("SARLINK_MAVLINK", "serial:/dev/ttyACM0:115200"));
    assert!(
        printed.contains(
            "mavlink = \"serial:/dev/ttyACM0:115200\"  # from environment variable SARLINK_MAVLINK"
        ) && printed.contains("mavlink_component = \"191\"  # default")
            && printed.contains("mavlink_budget = \"1000\"  # default"),
        "{printed}"
    );
}

#[test]
fn degradation_thresholds_and_resource_roots_are_configurable() {
    let out = resolved(drone().args([
        "--high-pressure",
        "90",
        "--recovery-cpu",
        "60",
        "--thermal-steps",
        "60,70,80",
        "--resource-interval",
        "500ms",
        "--proc-root",
        "/host/proc",
    ]));
    for line in [
        "high_pressure = \"90\"",
        "recovery_cpu = \"60\"",
        "thermal_steps = \"60,70,80\"",
        "resource_interval = \"500ms\"",
        "proc_root = \"/host/proc\"",
    ] {
        assert!(out.contains(line), "{line} not in\n{out}");
    }
}
