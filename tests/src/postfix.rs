//! A private, stock Postfix for end-to-end tests: its own configuration and queue in a fresh
//! directory, listening on a loopback port, relaying everything to a given next hop, with a
//! transport map for chosen domains (a return-path domain sent to Missive's MX). Debian's
//! package is installed when missing; Postfix starts as root, as its master must.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// A running Postfix; stopped when dropped.
#[derive(Debug)]
pub struct Postfix {
    pub addr: SocketAddr,
    dir: PathBuf,
}

/// A loopback address nothing listens on now.
#[must_use]
pub fn free_addr() -> SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.local_addr().expect("address")
}

fn run(command: &mut Command) -> Result<(), String> {
    let output = command.output().map_err(|e| format!("{command:?}: {e}"))?;
    if output.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{command:?}: {}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        ))
    }
}

/// Installs Debian's postfix package unless Postfix is there.
fn install() -> Result<(), String> {
    if Path::new("/usr/sbin/postfix").exists() && Path::new("/etc/postfix/master.cf").exists() {
        return Ok(());
    }
    run(Command::new("sh").args([
        "-c",
        "echo 'postfix postfix/main_mailer_type select No configuration' | debconf-set-selections \
         && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postfix",
    ]))
}

impl Postfix {
    /// Starts Postfix relaying to `next_hop`, and sending mail for each of `transports`'
    /// domains to its address instead.
    ///
    /// # Panics
    /// When Postfix cannot be installed or started (the message says why).
    #[must_use]
    pub fn start(next_hop: SocketAddr, transports: &[(&str, SocketAddr)]) -> Self {
        install().expect("Postfix for the end-to-end tests");
        let addr = free_addr();
        let dir = std::env::temp_dir().join(format!("missive-postfix-{}", uuid::Uuid::now_v7()));
        for sub in ["etc", "queue", "data"] {
            std::fs::create_dir_all(dir.join(sub)).expect("postfix directories");
        }
        // Postfix's daemons run as the postfix user and must reach their queue.
        run(Command::new("chmod").arg("711").arg(&dir)).expect("chmod");
        run(Command::new("chown").arg("postfix").arg(dir.join("data"))).expect("chown");
        let transport_map = transports
            .iter()
            .map(|(domain, to)| format!("{domain}=smtp:[{}]:{}", to.ip(), to.port()))
            .collect::<Vec<_>>()
            .join(" ");
        let d = dir.display();
        let main_cf = format!(
            "compatibility_level = 3.6\n\
             queue_directory = {d}/queue\n\
             data_directory = {d}/data\n\
             mail_owner = postfix\n\
             setgid_group = postdrop\n\
             myhostname = postfix.missive.test\n\
             inet_interfaces = 127.0.0.1\n\
             inet_protocols = ipv4\n\
             mynetworks = 127.0.0.0/8\n\
             mydestination =\n\
             local_recipient_maps =\n\
             local_transport = error:local delivery is off\n\
             relayhost = [{}]:{}\n\
             transport_maps = inline:{{ {transport_map} }}\n\
             alias_maps =\n\
             alias_database =\n\
             smtpd_relay_restrictions = permit_mynetworks, reject\n\
             smtp_dns_support_level = disabled\n\
             maillog_file_prefixes = {d}\n\
             maillog_file = {d}/maillog\n",
            next_hop.ip(),
            next_hop.port(),
        );
        std::fs::write(dir.join("etc/main.cf"), main_cf).expect("main.cf");
        let master = std::fs::read_to_string("/etc/postfix/master.cf").expect("master.cf");
        let master = master.replacen("smtp      inet", &format!("{addr} inet"), 1);
        std::fs::write(dir.join("etc/master.cf"), master).expect("master.cf");
        let etc = dir.join("etc");
        run(Command::new("/usr/sbin/postfix")
            .arg("-c")
            .arg(&etc)
            .arg("start"))
        .unwrap_or_else(|e| panic!("Postfix did not start: {e}"));
        let postfix = Self { addr, dir };
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(addr).is_err() {
            assert!(
                Instant::now() < deadline,
                "Postfix did not listen on {addr}; its log:\n{}",
                postfix.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        postfix
    }

    /// Postfix's log so far.
    #[must_use]
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("maillog")).unwrap_or_default()
    }

    /// The relay URL Missive sends through.
    #[must_use]
    pub fn relay_url(&self) -> String {
        format!("smtp://{}?tls=none", self.addr)
    }
}

impl Drop for Postfix {
    fn drop(&mut self) {
        drop(
            Command::new("/usr/sbin/postfix")
                .arg("-c")
                .arg(self.dir.join("etc"))
                .arg("stop")
                .output(),
        );
        drop(std::fs::remove_dir_all(&self.dir));
    }
}
