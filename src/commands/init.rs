//! `chorus init [--domain D]`: writes a commented `chorus.toml` with fresh secrets and the settings a
//! server needs (public URL, TLS, public IP, TURN, registration). It never overwrites a file.

use std::fmt::Write;
use std::io::Write as _;
use std::net::IpAddr;
use std::path::Path;

use rand::RngCore;

use super::Failure;

/// A secret of `bytes` random bytes as hex (safe inside a TOML string and on a command line).
fn secret(bytes: usize) -> String {
    let mut raw = vec![0u8; bytes];
    rand::rng().fill_bytes(&mut raw);
    super::hex(&raw)
}

/// The file's text. `discovered` are this machine's default-route addresses, offered as `public_ip`.
pub fn render(domain: Option<&str>, discovered: &[IpAddr]) -> String {
    let mut t = String::new();
    let _ = writeln!(t, "# Chorus configuration, written by `chorus init`. Every key is also a flag (`public_url` is");
    let _ = writeln!(t, "# --public-url) and a CHORUS_* variable; flags win over variables, variables over this file.");
    let _ = writeln!(t, "# docs/operations.md explains each step; `chorus ports` prints what the firewall must open.");
    let _ = writeln!(t);
    match domain {
        Some(d) => {
            let _ = writeln!(t, "# The address users type; the voice endpoint (wss://{d}/voice) follows from it.");
            let _ = writeln!(t, "public_url = \"https://{d}\"");
            let _ = writeln!(t);
            let _ =
                writeln!(t, "# HTTPS served by Chorus itself; both files are reloaded when they change. With certbot,");
            let _ =
                writeln!(t, "# copy them where the chorus user can read them at every renewal (docs/operations.md):");
            let _ =
                writeln!(t, "#   --deploy-hook 'install -m 640 -g chorus \"$RENEWED_LINEAGE\"/*.pem /etc/chorus/tls/'");
            let _ = writeln!(t, "listen = \"0.0.0.0:443\"");
            let _ = writeln!(t, "tls_cert = \"/etc/chorus/tls/fullchain.pem\"");
            let _ = writeln!(t, "tls_key = \"/etc/chorus/tls/privkey.pem\"");
            let _ = writeln!(t, "redirect_listen = \"0.0.0.0:80\"");
            let _ = writeln!(t, "# Behind Caddy or nginx instead: remove the four lines above and use");
            let _ = writeln!(t, "# listen = \"127.0.0.1:8080\"");
            let _ = writeln!(t, "# trusted_proxies = [\"127.0.0.1\"]");
        }
        None => {
            let _ = writeln!(
                t,
                "# The address users type, e.g. https://chat.example.org (`chorus init --domain` fills it in)."
            );
            let _ = writeln!(t, "# public_url = \"https://chat.example.org\"");
            let _ = writeln!(t, "listen = \"127.0.0.1:8080\"");
            let _ = writeln!(t, "# tls_cert = \"/etc/chorus/fullchain.pem\"");
            let _ = writeln!(t, "# tls_key = \"/etc/chorus/privkey.pem\"");
            let _ = writeln!(t, "# trusted_proxies = [\"127.0.0.1\"]");
        }
    }
    let _ = writeln!(t);
    let _ = writeln!(
        t,
        "# Media: UDP ports from udp_port_base, one per SFU worker. public_ip is where browsers send media:"
    );
    let _ =
        writeln!(t, "# this machine's address on the default route is below; behind NAT put the router's public one.");
    let ips: Vec<String> = discovered.iter().map(|ip| format!("\"{ip}\"")).collect();
    let ips = if ips.is_empty() { "\"203.0.113.5\"".to_string() } else { ips.join(", ") };
    let _ = writeln!(t, "udp_port_base = 50000");
    let _ = writeln!(t, "# public_ip = [{ips}]");
    let _ =
        writeln!(t, "# ICE over TCP, for browsers whose network blocks UDP (0 turns it off); open this TCP port too.");
    let _ = writeln!(t, "rtc_tcp_port = 7881");
    let _ = writeln!(t);
    let _ = writeln!(
        t,
        "# TURN for users whose network blocks UDP (coturn: use-auth-secret, static-auth-secret = the secret)."
    );
    let host = domain.unwrap_or("turn.example.org");
    let _ = writeln!(t, "# turn_url = [\"turn:{host}:3478\", \"turns:{host}:5349\"]");
    let _ = writeln!(t, "# turn_secret = \"{}\"", secret(24));
    let _ = writeln!(t);
    let _ = writeln!(t, "# Who may register: open, invite (codes from `chorus admin invite create`) or closed.");
    let _ = writeln!(
        t,
        "# Your own admin account, whatever the mode: `chorus admin user create NAME --password-stdin --admin`."
    );
    let _ = writeln!(t, "registration = \"{}\"", if domain.is_some() { "invite" } else { "open" });
    let _ = writeln!(t);
    let _ = writeln!(t, "# Signs voice tokens; keep it secret and keep it the same across restarts and cluster nodes.");
    let _ = writeln!(t, "voice_secret = \"{}\"", secret(32));
    t
}

/// Writes the file at `path`, refusing if anything is there; readable by its owner only (it holds secrets).
pub fn write(path: &Path, domain: Option<&str>) -> Result<(), Failure> {
    if let Some(d) = domain
        && (d.is_empty() || d.contains(['/', ':', ' ', '"']) || d.len() > 253)
    {
        return Err(Failure::usage(format!("--domain {d:?} is not a host name (e.g. chat.example.org)")));
    }
    let text = render(domain, &crate::media_addr::discover());
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path).map_err(|e| match e.kind() {
        std::io::ErrorKind::AlreadyExists => {
            Failure::failed(format!("{} exists; chorus init never overwrites a configuration", path.display()))
        }
        _ => Failure::failed(format!("creating {}: {e}", path.display())),
    })?;
    file.write_all(text.as_bytes()).map_err(|e| Failure::failed(format!("writing {}: {e}", path.display())))?;
    println!("wrote {}; edit it, then start chorus with --config {}", path.display(), path.display());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Cli, Config};

    fn load(text: &str) -> Config {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("chorus.toml");
        std::fs::write(&path, text).unwrap();
        Config::load(Cli { config: Some(path), ..Cli::default() }).unwrap()
    }

    #[test]
    fn the_written_file_loads_and_serves_the_domain_over_https() {
        let c = load(&render(Some("chat.example.org"), &["203.0.113.5".parse().unwrap()]));
        assert_eq!(c.public_url, "https://chat.example.org");
        assert_eq!(c.listen.port(), 443);
        assert_eq!(c.rtc_tcp_port, Some(7881), "ICE over TCP is written out, on");
        let tls = c.tls.expect("TLS settings");
        assert!(matches!(&tls.certs, crate::config::Certificates::Files(f) if f.cert.ends_with("tls/fullchain.pem")));
        assert_eq!(tls.redirect_listen.map(|a| a.port()), Some(80));
        assert_eq!(c.registration.to_string(), "invite");
        assert_eq!(c.voice_secret.map(|s| s.len()), Some(64));
    }

    #[test]
    fn without_a_domain_it_is_a_local_first_run_with_secrets() {
        let text = render(None, &[]);
        let c = load(&text);
        assert_eq!(c.listen.to_string(), "127.0.0.1:8080");
        assert!(c.tls.is_none());
        assert_eq!(c.registration.to_string(), "open");
        assert!(text.contains("# turn_secret = \""), "a TURN secret ready to uncomment");
    }

    #[test]
    fn every_run_makes_new_secrets() {
        assert_ne!(render(None, &[]), render(None, &[]));
    }

    #[test]
    fn an_existing_file_is_never_overwritten() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("chorus.toml");
        std::fs::write(&path, "# mine\n").unwrap();
        let e = write(&path, None).unwrap_err();
        assert_eq!(e.code, Failure::FAILED);
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "# mine\n");
        assert_eq!(write(&dir.path().join("x.toml"), Some("bad/name")).unwrap_err().code, Failure::USAGE);
    }
}
