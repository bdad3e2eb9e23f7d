//! The settings the command line may override (`--listen`, `--admin-listen`,
//! `--brokers`, each also an environment variable), as a plain value the
//! binary fills in and `load_with` writes over the file's before validating.
//! The flags' names live here, with the settings they override, so that an
//! error caused by one names it exactly as the operator typed it.

use std::fmt;
use std::net::SocketAddr;

/// A command-line flag that overrides a setting of the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flag {
    /// `--listen`, over `listen`.
    Listen,
    /// `--admin-listen`, over `admin_listen`.
    AdminListen,
    /// `--brokers`, over `kafka.bootstrap`.
    Brokers,
}

impl Flag {
    /// The long flag, without its dashes.
    pub const fn long(self) -> &'static str {
        match self {
            Flag::Listen => "listen",
            Flag::AdminListen => "admin-listen",
            Flag::Brokers => "brokers",
        }
    }

    /// The environment variable clap reads when the flag is absent.
    pub const fn env(self) -> &'static str {
        match self {
            Flag::Listen => "SSE_KAFKA_LISTEN",
            Flag::AdminListen => "SSE_KAFKA_ADMIN_LISTEN",
            Flag::Brokers => "SSE_KAFKA_BROKERS",
        }
    }

    /// The field of the file it overrides, as errors name fields.
    pub(super) const fn field(self) -> &'static str {
        match self {
            Flag::Listen => "listen",
            Flag::AdminListen => "admin_listen",
            Flag::Brokers => "kafka.bootstrap",
        }
    }
}

/// `--brokers (SSE_KAFKA_BROKERS)`: the flag and its variable, since the error
/// cannot tell which of the two the value came from.
impl fmt::Display for Flag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "--{} ({})", self.long(), self.env())
    }
}

/// Values given on the command line (or in the environment) that replace the
/// file's; `None` keeps the file's. They are checked like the file's values.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    pub listen: Option<SocketAddr>,
    pub admin_listen: Option<SocketAddr>,
    /// Each entry `host:port`, as in `kafka.bootstrap`.
    pub brokers: Option<Vec<String>>,
}

impl Overrides {
    /// The flag that gave the value of `field` (or of a part of it, such as
    /// `kafka.bootstrap[1]`), if one did.
    pub(super) fn flag_for(&self, field: &str) -> Option<Flag> {
        let given = [
            (Flag::Listen, self.listen.is_some()),
            (Flag::AdminListen, self.admin_listen.is_some()),
            (Flag::Brokers, self.brokers.is_some()),
        ];
        given.into_iter().find_map(|(flag, given)| {
            let within = field
                .strip_prefix(flag.field())
                .is_some_and(|rest| rest.is_empty() || rest.starts_with(['.', '[']));
            (given && within).then_some(flag)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flag_for_names_only_given_flags_and_their_fields() {
        let listen = Some("127.0.0.1:1".parse().unwrap());
        let all = Overrides {
            listen,
            admin_listen: listen,
            brokers: Some(vec!["a:1".into()]),
        };
        let none = Overrides::default();
        let cases = [
            ("listen", Some(Flag::Listen)),
            ("admin_listen", Some(Flag::AdminListen)),
            ("kafka.bootstrap", Some(Flag::Brokers)),
            ("kafka.bootstrap[3]", Some(Flag::Brokers)),
            // A field that merely starts with an overridden one's name.
            ("listeners", None),
            ("kafka.bootstrap_extra", None),
            ("kafka.client_id", None),
            ("routes[0].path", None),
        ];
        for (field, want) in cases {
            assert_eq!(all.flag_for(field), want, "{field}");
            assert_eq!(none.flag_for(field), None, "{field} without flags");
        }
    }

    #[test]
    fn flags_display_with_their_variable() {
        let cases = [
            (Flag::Listen, "--listen (SSE_KAFKA_LISTEN)"),
            (Flag::AdminListen, "--admin-listen (SSE_KAFKA_ADMIN_LISTEN)"),
            (Flag::Brokers, "--brokers (SSE_KAFKA_BROKERS)"),
        ];
        for (flag, want) in cases {
            assert_eq!(flag.to_string(), want);
        }
    }
}
