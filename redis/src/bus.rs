//! The fleet's message bus: one Redis pub/sub channel per fleet
//! (`<prefix>:fleet`), fanned out inside the instance to whoever waits.
//!
//! Messages are `<kind> <redis key> [<revision>]`, published by the Lua scripts in
//! the same atomic step as the change they announce, so a waiter that subscribed
//! before it read cannot miss the change it waits for. When the link drops, messages
//! may be lost: the bus then sends [`BusMessage::Resync`] and every waiter re-reads.
//!
//! One channel, not one per key: an instance holds one subscription whatever the
//! number of identities, and a message costs Redis one delivery per instance.

use redis::{PushInfo, PushKind, Value};
use tokio::sync::broadcast;

/// What a message says happened to a key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    /// A record was written (its revision follows).
    Changed,
    /// A record was removed (logout, back-channel logout).
    Removed,
    /// A lease was released.
    Released,
    /// The identity's access token is no longer good (revocation seen, `invalidate()`).
    Invalidated,
    /// A back-channel logout: the "key" names the sessions to end (`backchannel`).
    Logout,
    /// The session of a record key logged out on one instance: the others end theirs.
    Ended,
}

impl Kind {
    fn parse(word: &str) -> Option<Kind> {
        Some(match word {
            "changed" => Kind::Changed,
            "removed" => Kind::Removed,
            "released" => Kind::Released,
            "invalidated" => Kind::Invalidated,
            "logout" => Kind::Logout,
            "ended" => Kind::Ended,
            _ => return None,
        })
    }
}

/// One message as the instance sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum BusMessage {
    /// Something happened to `key`.
    Key {
        kind: Kind,
        key: String,
        revision: Option<u64>,
    },
    /// Messages may have been lost: re-read whatever you wait for.
    Resync,
}

/// The in-process side of the channel.
pub(crate) struct Bus {
    channel: String,
    sender: broadcast::Sender<BusMessage>,
}

impl Bus {
    pub(crate) fn new(prefix: &str) -> Self {
        Bus {
            channel: format!("{prefix}:fleet"),
            // A lagging receiver loses the oldest messages and is told so; waiters treat
            // that as a resync.
            sender: broadcast::channel(4096).0,
        }
    }

    pub(crate) fn channel(&self) -> &str {
        &self.channel
    }

    pub(crate) fn subscribe(&self) -> broadcast::Receiver<BusMessage> {
        self.sender.subscribe()
    }

    pub(crate) fn resync(&self) {
        let _ = self.sender.send(BusMessage::Resync);
    }

    /// A RESP3 push from the connection: a message on our channel, or a disconnection.
    pub(crate) fn on_push(&self, info: &PushInfo) {
        match info.kind {
            PushKind::Disconnection => self.resync(),
            PushKind::Message => {
                let [channel, payload] = info.data.as_slice() else {
                    return;
                };
                if text(channel).as_deref() != Some(self.channel.as_str()) {
                    return;
                }
                if let Some(message) = text(payload).as_deref().and_then(parse) {
                    let _ = self.sender.send(message);
                }
            }
            _ => {}
        }
    }
}

fn text(value: &Value) -> Option<String> {
    match value {
        Value::BulkString(bytes) => String::from_utf8(bytes.clone()).ok(),
        Value::SimpleString(s) => Some(s.clone()),
        _ => None,
    }
}

/// The payload a script publishes; keys never contain spaces (they are built by
/// `store::Keys`).
pub(crate) fn parse(payload: &str) -> Option<BusMessage> {
    let mut words = payload.split(' ');
    let kind = Kind::parse(words.next()?)?;
    let key = words.next()?.to_owned();
    let revision = match words.next() {
        Some(word) => Some(word.parse().ok()?),
        None => None,
    };
    Some(BusMessage::Key { kind, key, revision })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payloads_parse_and_junk_is_ignored() {
        assert_eq!(
            parse("changed tk:{a}:rec 7"),
            Some(BusMessage::Key {
                kind: Kind::Changed,
                key: "tk:{a}:rec".into(),
                revision: Some(7)
            })
        );
        assert_eq!(
            parse("released tk:{a}:lease"),
            Some(BusMessage::Key {
                kind: Kind::Released,
                key: "tk:{a}:lease".into(),
                revision: None
            })
        );
        assert_eq!(
            parse("ended tk:{a}:rec 18446744073709551615"),
            Some(BusMessage::Key {
                kind: Kind::Ended,
                key: "tk:{a}:rec".into(),
                revision: Some(u64::MAX)
            })
        );
        assert!(matches!(
            parse("logout aHR0cHM.YQ."),
            Some(BusMessage::Key { kind: Kind::Logout, .. })
        ));
        for junk in [
            "",
            "changed",
            "exploded k",
            "changed k notanumber",
            "changed k 99999999999999999999999",
        ] {
            assert_eq!(parse(junk), None, "{junk:?}");
        }
    }
}
