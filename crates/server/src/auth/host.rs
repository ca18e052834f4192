//! The `Host` check against DNS rebinding. A web page on an attacker's name that re-points
//! that name at 127.0.0.1 reaches a loopback server from the victim's browser, with the
//! browser's blessing as same-origin; the one thing it cannot change is the `Host` header,
//! which still carries the attacker's name. So a server bound to loopback answers only
//! hosts that are this machine's own names or IP addresses (which a rebinding cannot use),
//! plus the names `HEARTH_ALLOWED_HOSTS` adds, as Ollama and llama.cpp's server do.

use std::net::IpAddr;

#[derive(Debug, Clone, Default)]
pub struct AllowedHosts {
    /// Names allowed besides the local ones, lowercased; `*` allows every host.
    extra: Vec<String>,
    /// This machine's host name, lowercased.
    hostname: Option<String>,
}

impl AllowedHosts {
    /// The local names, this machine's host name and a comma-separated list of more names
    /// (`HEARTH_ALLOWED_HOSTS`; `*` allows any, `.example.com` any name under it).
    pub fn local_and(list: &str) -> Self {
        let extra = list.split(',').map(|n| n.trim().to_ascii_lowercase()).filter(|n| !n.is_empty()).collect();
        Self { extra, hostname: machine_hostname() }
    }

    /// Whether a request whose `Host` header is `host` (with its port, if any) may be served.
    pub fn allows(&self, host: &str) -> bool {
        let name = strip_port(host).to_ascii_lowercase();
        let name = name.trim_end_matches('.');
        if name.is_empty() || name.trim_start_matches('[').trim_end_matches(']').parse::<IpAddr>().is_ok() {
            return true;
        }
        let local = name == "localhost" || [".localhost", ".local", ".internal"].iter().any(|tld| name.ends_with(tld));
        local
            || self.hostname.as_deref() == Some(name)
            || self.extra.iter().any(|allowed| {
                allowed == "*" || allowed == name || (allowed.starts_with('.') && name.ends_with(allowed.as_str()))
            })
    }
}

/// `host` without a `:port` (an IPv6 literal keeps its brackets).
fn strip_port(host: &str) -> &str {
    if host.starts_with('[') {
        return host.find(']').map_or(host, |end| &host[..=end]);
    }
    match host.rsplit_once(':') {
        Some((name, port)) if port.chars().all(|c| c.is_ascii_digit()) && !name.contains(':') => name,
        _ => host,
    }
}

fn machine_hostname() -> Option<String> {
    let name = std::fs::read_to_string("/proc/sys/kernel/hostname").ok().or_else(|| std::env::var("HOSTNAME").ok())?;
    let name = name.trim().to_ascii_lowercase();
    (!name.is_empty()).then_some(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_names_and_addresses_pass_and_other_names_do_not() {
        let hosts = AllowedHosts { extra: Vec::new(), hostname: Some("box".into()) };
        for ok in [
            "localhost",
            "LOCALHOST:11434",
            "127.0.0.1",
            "127.0.0.1:11434",
            "[::1]:11434",
            "[::1]",
            "10.0.0.5:80",
            "app.localhost:3000",
            "printer.local",
            "box",
            "box:11434",
            "",
        ] {
            assert!(hosts.allows(ok), "{ok}");
        }
        for bad in ["evil.example.com", "evil.example.com:11434", "localhost.evil.com", "127.0.0.1.nip.io"] {
            assert!(!hosts.allows(bad), "{bad}");
        }
    }

    #[test]
    fn the_allowed_hosts_list_adds_names_domains_or_everything() {
        let hosts = AllowedHosts::local_and(" hearth.example.com, .corp.example ");
        assert!(hosts.allows("hearth.example.com:443"));
        assert!(hosts.allows("a.corp.example"));
        assert!(!hosts.allows("example.com"));
        assert!(AllowedHosts::local_and("*").allows("anything.example"));
    }
}
