//! The zenoh side: which endpoints to listen on and connect to, the session's
//! configuration, and the keys a bridge uses under its prefix.

use std::path::PathBuf;
use std::time::Duration;

use zenoh::Wait;

use crate::frame::MAX_FRAME_LEN;
use crate::BridgeError;

/// The longest zenoh message a bridge's session accepts: a frame, and room for the
/// key and zenoh's own headers.
pub const MAX_MESSAGE_LEN: usize = MAX_FRAME_LEN + 64 * 1024;

/// How a bridge joins the zenoh network. Endpoints are explicit (`tcp/HOST:PORT`):
/// multicast scouting is off unless [`Network::scouting`] is set, so a bridge talks
/// only to the peers it was told about.
#[derive(Debug, Clone)]
pub struct Network {
    /// Endpoints to listen on, e.g. `tcp/0.0.0.0:7447`.
    pub listen: Vec<String>,
    /// Endpoints of peers to connect to, e.g. `tcp/10.0.0.5:7447`.
    pub connect: Vec<String>,
    /// Give up opening the session if no `connect` endpoint answers within this time.
    /// After a successful start a lost link is retried for ever.
    pub connect_timeout: Duration,
    /// Turn zenoh's multicast scouting on (off by default).
    pub scouting: bool,
    /// A zenoh configuration file (JSON5) to start from; the fields above override it.
    pub config_file: Option<PathBuf>,
}

impl Default for Network {
    fn default() -> Self {
        Network {
            listen: Vec::new(),
            connect: Vec::new(),
            connect_timeout: Duration::from_secs(5),
            scouting: false,
            config_file: None,
        }
    }
}

impl Network {
    /// The zenoh configuration: peer mode, these endpoints, scouting as asked, lost
    /// links retried every 0.2 to 1 s, messages of at most [`MAX_MESSAGE_LEN`] bytes.
    pub fn config(&self) -> Result<zenoh::Config, BridgeError> {
        let mut config = match &self.config_file {
            Some(path) => zenoh::Config::from_file(path).map_err(|e| {
                BridgeError::zenoh(format!("reading the configuration {}", path.display()), e)
            })?,
            None => zenoh::Config::default(),
        };
        let set = |config: &mut zenoh::Config, key: &str, value: String| {
            config
                .insert_json5(key, &value)
                .map_err(|e| BridgeError::zenoh(format!("setting {key} to {value}"), e))
        };
        let list = |v: &[String]| serde_json::to_string(v).unwrap_or_else(|_| "[]".into());
        set(&mut config, "mode", "\"peer\"".into())?;
        if !self.listen.is_empty() || self.config_file.is_none() {
            set(&mut config, "listen/endpoints", list(&self.listen))?;
        }
        if !self.connect.is_empty() || self.config_file.is_none() {
            set(&mut config, "connect/endpoints", list(&self.connect))?;
        }
        let ms = self.connect_timeout.as_millis().clamp(1, i64::MAX as u128);
        set(&mut config, "connect/timeout_ms", ms.to_string())?;
        set(&mut config, "connect/exit_on_failure", "true".into())?;
        set(
            &mut config,
            "connect/retry",
            "{period_init_ms: 200, period_max_ms: 1000, period_increase_factor: 2}".into(),
        )?;
        set(
            &mut config,
            "scouting/multicast/enabled",
            self.scouting.to_string(),
        )?;
        // No message on a bridge's session is longer than a frame (and zenoh's own
        // headers): refuse longer ones before reassembling them (zenoh's default is
        // 1 GiB). A configuration file may set less.
        let key = "transport/link/rx/max_message_size";
        let ours = MAX_MESSAGE_LEN;
        let configured = config
            .get_json(key)
            .ok()
            .and_then(|v| v.trim().parse::<usize>().ok());
        let limit = configured.map_or(ours, |c| c.min(ours));
        set(&mut config, key, limit.to_string())?;
        Ok(config)
    }

    /// Opens the zenoh session: an error if a `connect` endpoint is unreachable for
    /// [`Network::connect_timeout`], or a `listen` endpoint cannot be bound.
    pub fn open(&self) -> Result<zenoh::Session, BridgeError> {
        let config = self.config()?;
        zenoh::open(config).wait().map_err(|e| {
            BridgeError::zenoh(
                format!(
                    "opening the session (listen {:?}, connect {:?}, connect timeout {:?})",
                    self.listen, self.connect, self.connect_timeout
                ),
                e,
            )
        })
    }
}

/// The keys of one bridged segment under its prefix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Keys {
    /// The prefix as given.
    pub prefix: String,
    /// `PREFIX/data`: the frames.
    pub data: String,
    /// `PREFIX/meta`: the queryable describing the source.
    pub meta: String,
    /// `PREFIX/exporter`: the root of the exporter's liveliness token.
    pub alive: String,
}

impl Keys {
    /// Checks `prefix` (a concrete zenoh key: no wildcard, no empty chunk) and derives
    /// the bridge's keys from it.
    pub fn new(prefix: &str) -> Result<Keys, BridgeError> {
        let invalid = |reason: &str| BridgeError::InvalidKey {
            key: prefix.to_owned(),
            reason: reason.to_owned(),
        };
        if prefix.is_empty() {
            return Err(invalid("empty"));
        }
        if prefix.contains('*') || prefix.contains('$') {
            return Err(invalid(
                "wildcards (`*`, `**`, `$*`) are not allowed: a bridge serves one concrete key",
            ));
        }
        if prefix.contains(['?', '#']) {
            return Err(invalid("`?` and `#` are not allowed in a key"));
        }
        zenoh::key_expr::KeyExpr::try_from(format!("{prefix}/data"))
            .map_err(|e| invalid(&e.to_string()))?;
        Ok(Keys {
            prefix: prefix.to_owned(),
            data: format!("{prefix}/data"),
            meta: format!("{prefix}/meta"),
            alive: format!("{prefix}/exporter"),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_are_bounded_by_a_frame() {
        let config = Network::default().config().expect("config");
        let limit = config
            .get_json("transport/link/rx/max_message_size")
            .expect("the limit");
        assert_eq!(limit.trim().parse::<usize>().ok(), Some(MAX_MESSAGE_LEN));
    }

    #[test]
    fn keys() {
        assert_eq!(Keys::new("md/quotes").unwrap().data, "md/quotes/data");
        for bad in ["", "md/*", "md/**", "a/$*b", "/md", "md/", "a//b", "a?b"] {
            assert!(
                matches!(Keys::new(bad), Err(BridgeError::InvalidKey { .. })),
                "{bad:?}"
            );
        }
    }
}
