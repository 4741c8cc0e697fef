//! Parsing of the HTTP `WWW-Authenticate` response header (RFC 9110 §11.6.1) and
//! distillation of an OAuth 2.0 Bearer challenge (RFC 6750 §3) into a verdict the
//! token SDK can act on (renew the token or not).
//!
//! This module is pure string processing: it performs no I/O, does not decide
//! *when* to renew a token, and does not look at status codes or other headers.
//! The parser is deliberately lenient: it never panics, runs in linear time without
//! recursion, and recovers what it can from malformed input.

/// One challenge of a WWW-Authenticate header.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Challenge {
    /// The auth-scheme exactly as sent (e.g. `Bearer`, `bearer`, `Basic`).
    pub scheme: String,
    /// The token68 form of the credentials, if the challenge used it (e.g. `Negotiate abc==`).
    pub token68: Option<String>,
    /// The auth-params in order of appearance: lowercased name and unescaped value.
    pub params: Vec<(String, String)>,
}

impl Challenge {
    /// Returns true if this challenge's scheme equals `scheme`, ignoring ASCII case
    /// (RFC 9110 §11.1: auth-schemes are case-insensitive).
    pub fn is_scheme(&self, scheme: &str) -> bool {
        self.scheme.eq_ignore_ascii_case(scheme)
    }

    /// Returns the value of the first auth-param named `name` (ASCII case-insensitive).
    pub fn param(&self, name: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// Parses one header value into its challenges. Never panics; garbage yields whatever
/// well-formed challenges could be recovered (skip to the next comma that could start
/// a new challenge), possibly none.
///
/// A malformed list element closes the current challenge (keeping the params parsed
/// before it); auth-params that follow it are dropped until the next auth-scheme.
pub fn parse_challenges(header_value: &str) -> Vec<Challenge> {
    let mut p = Parser {
        src: header_value,
        b: header_value.as_bytes(),
        pos: 0,
        unterminated_from: usize::MAX,
    };
    let mut out = Vec::new();
    let mut current: Option<Challenge> = None;
    loop {
        // RFC 9110 §5.6.1: recipients must accept and ignore empty list elements.
        while matches!(p.peek(), Some(b' ' | b'\t' | b',')) {
            p.pos += 1;
        }
        if p.pos >= p.b.len() {
            break;
        }
        if let Err(fail_at) = p.element(&mut current, &mut out) {
            out.extend(current.take());
            p.pos = fail_at;
            p.skip_to_comma();
        }
    }
    out.extend(current);
    out
}

/// What a resource server's Bearer challenge says, distilled for the token SDK (RFC 6750 §3.1).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BearerVerdict {
    /// `error="invalid_token"`, or a Bearer challenge with no error at all (RFC 6750 §3.1:
    /// the request lacked valid authentication): the token is revoked/expired/unknown → renew it.
    InvalidToken {
        /// The server's `error_description`, if any.
        description: Option<String>,
    },
    /// `error="insufficient_scope"` → a new token would not help; `scope` is what the
    /// server says is needed.
    InsufficientScope {
        /// The server's `scope` param: the scope required for the resource, if given.
        scope: Option<String>,
        /// The server's `error_description`, if any.
        description: Option<String>,
    },
    /// `error="invalid_request"` → the request is malformed; renewing the token would not help.
    InvalidRequest {
        /// The server's `error_description`, if any.
        description: Option<String>,
    },
    /// No Bearer challenge in the header (another scheme only, or unparseable).
    NotBearer,
    /// A `DPoP` challenge with `error="use_dpop_nonce"` (RFC 9449 §9): the proof lacked
    /// the resource server's current nonce; send again with it, the token is fine.
    UseDpopNonce,
}

/// Looks at every header value given (a response may carry several WWW-Authenticate
/// headers) and returns the verdict of the first Bearer challenge (scheme matched
/// case-insensitively; unknown error codes → [`BearerVerdict::InvalidToken`] since
/// RFC 6750 §3.1 lets servers extend codes and a 401 means the token is not accepted).
///
/// A `DPoP` challenge (RFC 9449 §7.1) is read the same way, since a DPoP-bound token is
/// refused with one; where a server sends both schemes, the one carrying an `error`
/// is the one about the token that was sent.
pub fn bearer_verdict<'a>(header_values: impl IntoIterator<Item = &'a str>) -> BearerVerdict {
    let token_challenges: Vec<Challenge> = header_values
        .into_iter()
        .flat_map(parse_challenges)
        .filter(|c| c.is_scheme("Bearer") || c.is_scheme("DPoP"))
        .collect();
    let Some(c) = token_challenges
        .iter()
        .find(|c| c.param("error").is_some())
        .or_else(|| token_challenges.first())
    else {
        return BearerVerdict::NotBearer;
    };
    let description = c.param("error_description").map(str::to_owned);
    match c.param("error") {
        Some(e) if c.is_scheme("DPoP") && e.eq_ignore_ascii_case("use_dpop_nonce") => BearerVerdict::UseDpopNonce,
        Some(e) if e.eq_ignore_ascii_case("insufficient_scope") => BearerVerdict::InsufficientScope {
            scope: c.param("scope").map(str::to_owned),
            description,
        },
        Some(e) if e.eq_ignore_ascii_case("invalid_request") => BearerVerdict::InvalidRequest { description },
        _ => BearerVerdict::InvalidToken { description },
    }
}

/// Byte cursor over one header value. Errors carry the byte offset where parsing failed.
struct Parser<'s> {
    src: &'s str,
    b: &'s [u8],
    pos: usize,
    /// Offset of the first opening quote known to be unterminated. Every later quote is
    /// unterminated too (its scan re-synchronises with the earlier one), so caching this
    /// keeps hostile inputs like `"\"\"\"…` linear instead of quadratic.
    unterminated_from: usize,
}

impl Parser<'_> {
    fn peek(&self) -> Option<u8> {
        self.b.get(self.pos).copied()
    }

    fn skip_ows(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t')) {
            self.pos += 1;
        }
    }

    fn at_element_end(&self) -> bool {
        matches!(self.peek(), None | Some(b','))
    }

    /// Consumes the longest run of bytes satisfying `pred` and returns it as a string slice.
    fn take_while(&mut self, pred: impl Fn(u8) -> bool) -> &str {
        let start = self.pos;
        while self.peek().is_some_and(&pred) {
            self.pos += 1;
        }
        // Only ASCII bytes are ever consumed here, so both ends are char boundaries.
        self.src.get(start..self.pos).unwrap_or("")
    }

    /// token = 1*tchar (RFC 9110 §5.6.2).
    fn token(&mut self) -> Result<String, usize> {
        let t = self.take_while(|c| c.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&c));
        if t.is_empty() {
            Err(self.pos)
        } else {
            Ok(t.to_owned())
        }
    }

    /// Parses one list element: an auth-param of the current challenge, or a new challenge.
    fn element(&mut self, current: &mut Option<Challenge>, out: &mut Vec<Challenge>) -> Result<(), usize> {
        let name = self.token()?;
        let after_name = self.pos;
        self.skip_ows();
        if self.peek() == Some(b'=') {
            // Only an auth-param starts with `token BWS "="` (RFC 9110 §11.2); it belongs to the
            // current challenge unless there is none or that one used token68.
            let Some(c) = current.as_mut().filter(|c| c.token68.is_none()) else {
                return Err(self.pos);
            };
            let value = self.param_value()?;
            c.params.push((name.to_ascii_lowercase(), value));
            return Ok(());
        }
        self.pos = after_name;
        out.extend(current.take());
        let c = current.insert(Challenge {
            scheme: name,
            token68: None,
            params: Vec::new(),
        });
        if self.at_element_end() {
            return Ok(());
        }
        // challenge = auth-scheme [ 1*SP ( token68 / #auth-param ) ] (RFC 9110 §11.6.1).
        if !matches!(self.peek(), Some(b' ' | b'\t')) {
            return Err(self.pos);
        }
        self.skip_ows();
        if self.at_element_end() {
            return Ok(());
        }
        // token68 and the first auth-param both start with token characters; token68 is the
        // reading only when nothing but whitespace follows it in this element.
        let start = self.pos;
        let t68 = self
            .take_while(|c| c.is_ascii_alphanumeric() || b"-._~+/".contains(&c))
            .to_owned();
        let pad = self.take_while(|c| c == b'=').len();
        self.skip_ows();
        if !t68.is_empty() && self.at_element_end() {
            c.token68 = Some(t68 + &"=".repeat(pad));
            return Ok(());
        }
        self.pos = start;
        let name = self.token()?;
        self.skip_ows();
        if self.peek() != Some(b'=') {
            return Err(self.pos);
        }
        let value = self.param_value()?;
        c.params.push((name.to_ascii_lowercase(), value));
        Ok(())
    }

    /// Parses `"=" BWS ( token / quoted-string )` up to the end of the list element.
    fn param_value(&mut self) -> Result<String, usize> {
        self.pos += 1; // the '=' the caller peeked
        self.skip_ows();
        let value = if self.peek() == Some(b'"') {
            self.quoted_string()?
        } else {
            self.token()?
        };
        self.skip_ows();
        if self.at_element_end() {
            Ok(value)
        } else {
            Err(self.pos)
        }
    }

    /// Scans the quoted-string opening at `self.pos` (RFC 9110 §5.6.4), returning its
    /// unescaped content and the offset just past the closing quote.
    fn scan_quoted(&mut self) -> Option<(String, usize)> {
        if self.pos >= self.unterminated_from {
            return None;
        }
        let mut buf = Vec::new();
        let mut i = self.pos + 1;
        while let Some(&c) = self.b.get(i) {
            match c {
                b'"' => {
                    // Escapes only drop ASCII backslashes, so the bytes stay valid UTF-8.
                    let s =
                        String::from_utf8(buf).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned());
                    return Some((s, i + 1));
                }
                b'\\' => match self.b.get(i + 1) {
                    Some(&escaped) => {
                        buf.push(escaped);
                        i += 2;
                    }
                    None => break,
                },
                _ => {
                    buf.push(c);
                    i += 1;
                }
            }
        }
        self.unterminated_from = self.pos;
        None
    }

    fn quoted_string(&mut self) -> Result<String, usize> {
        let (s, end) = self.scan_quoted().ok_or(self.pos)?;
        self.pos = end;
        Ok(s)
    }

    /// Recovery: advances to the next comma outside a (terminated) quoted string, so that a
    /// comma inside a quoted value is not mistaken for a list separator.
    fn skip_to_comma(&mut self) {
        while let Some(c) = self.peek() {
            match c {
                b',' => break,
                b'"' => match self.scan_quoted() {
                    Some((_, end)) => self.pos = end,
                    None => self.pos += 1,
                },
                _ => self.pos += 1,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::BearerVerdict::{InsufficientScope, InvalidRequest, InvalidToken, NotBearer};
    use super::*;
    use proptest::prelude::*;

    fn ch(scheme: &str, params: &[(&str, &str)]) -> Challenge {
        let params = params.iter().map(|(n, v)| (n.to_string(), v.to_string())).collect();
        Challenge {
            scheme: scheme.into(),
            token68: None,
            params,
        }
    }

    fn desc(s: &str) -> Option<String> {
        Some(s.to_owned())
    }

    #[test]
    fn rfc6750_examples() {
        assert_eq!(
            parse_challenges(r#"Bearer realm="example""#),
            vec![ch("Bearer", &[("realm", "example")])]
        );
        let expired = r#"Bearer realm="example", error="invalid_token", error_description="The access token expired""#;
        assert_eq!(
            bearer_verdict([expired]),
            InvalidToken {
                description: desc("The access token expired")
            }
        );
        assert_eq!(
            bearer_verdict([r#"Bearer realm="example""#]),
            InvalidToken { description: None }
        );
    }

    #[test]
    fn keycloak_header_means_renew() {
        let h = r#"Bearer realm="myrealm", error="invalid_token", error_description="Token verification failed""#;
        let c = &parse_challenges(h)[0];
        assert_eq!(
            (c.param("realm"), c.param("ERROR")),
            (Some("myrealm"), Some("invalid_token"))
        );
        assert_eq!(
            bearer_verdict([h]),
            InvalidToken {
                description: desc("Token verification failed")
            }
        );
    }

    #[test]
    fn insufficient_scope_carries_scope_and_invalid_request_is_distinct() {
        let h = r#"Bearer error="insufficient_scope", scope="read write", error_description="need more""#;
        let scope = desc("read write");
        assert_eq!(
            bearer_verdict([h]),
            InsufficientScope {
                scope,
                description: desc("need more")
            }
        );
        assert_eq!(
            bearer_verdict(["Bearer error=invalid_request"]),
            InvalidRequest { description: None }
        );
        assert_eq!(
            bearer_verdict(["Bearer error=some_vendor_code"]),
            InvalidToken { description: None }
        );
    }

    #[test]
    fn several_challenges_and_header_values() {
        let h = r#"Basic realm="x", Bearer error="invalid_token""#;
        assert_eq!(
            parse_challenges(h),
            vec![
                ch("Basic", &[("realm", "x")]),
                ch("Bearer", &[("error", "invalid_token")])
            ]
        );
        let values = [
            r#"Basic realm="a""#,
            "Negotiate",
            r#"bearer ERROR="insufficient_scope", Scope=openid"#,
        ];
        assert_eq!(
            bearer_verdict(values),
            InsufficientScope {
                scope: desc("openid"),
                description: None
            }
        );
        assert_eq!(bearer_verdict([r#"Basic realm="x""#, "Digest nonce=1"]), NotBearer);
    }

    #[test]
    fn quoting_escapes_whitespace_and_empty_elements() {
        let h = r#" ,, bEaReR  realm = "a, b=c \"q\" \\ d" ,,	error=invalid_token ,"#;
        let c = parse_challenges(h);
        assert_eq!(
            c,
            vec![ch(
                "bEaReR",
                &[("realm", r#"a, b=c "q" \ d"#), ("error", "invalid_token")]
            )]
        );
        assert!(c[0].is_scheme("BEARER"));
    }

    #[test]
    fn token68_challenges() {
        let c = parse_challenges("Negotiate abc123==, Basic realm=r, NTLM");
        assert_eq!(c[0].token68.as_deref(), Some("abc123=="));
        assert_eq!((c[1].param("realm"), c[2].scheme.as_str()), (Some("r"), "NTLM"));
    }

    #[test]
    fn empty_and_garbage_headers() {
        assert!(parse_challenges("").is_empty());
        assert!(parse_challenges(" , ,, ").is_empty());
        assert_eq!(bearer_verdict([""]), NotBearer);
        assert_eq!(bearer_verdict(std::iter::empty()), NotBearer);
        // Orphan params and junk are skipped; the well-formed challenge after them survives.
        let h = r#"realm="x", =junk "a,b", Bearer error="invalid_token" trailing junk, é"#;
        assert_eq!(parse_challenges(h), vec![ch("Bearer", &[])]);
        assert_eq!(
            parse_challenges("Bearer realm=\"unterminated, Basic realm=ok"),
            vec![ch("Bearer", &[]), ch("Basic", &[("realm", "ok")])]
        );
        assert_eq!(parse_challenges("Bearer error=\"x\\"), vec![ch("Bearer", &[])]);
        assert_eq!(
            parse_challenges("Bearer error_description=\"héllo ✓\""),
            vec![ch("Bearer", &[("error_description", "héllo ✓")])]
        );
    }

    #[test]
    fn megabyte_inputs_are_linear() {
        for unit in [",", "\"", "\\\"", "\"\\", "a=", "Bearer a=\"", "=", " "] {
            let h = unit.repeat((1 << 20) / unit.len());
            let t = std::time::Instant::now();
            let _ = parse_challenges(&h);
            assert!(t.elapsed() < std::time::Duration::from_secs(5), "slow on {unit:?}");
        }
    }

    fn quote(v: &str) -> String {
        format!("\"{}\"", v.replace('\\', "\\\\").replace('"', "\\\""))
    }

    fn is_token(v: &str) -> bool {
        !v.is_empty()
            && v.bytes()
                .all(|c| c.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&c))
    }

    const TOKEN: &str = "[A-Za-z0-9!#$%&'*+.^_`|~-]{1,8}";

    fn challenge() -> impl Strategy<Value = Challenge> {
        let params = prop::collection::vec((TOKEN, "[ -~]{0,12}|\\PC{0,6}"), 0..4);
        let t68 = prop::option::weighted(0.2, "[A-Za-z0-9._~+/-]{1,8}={0,2}");
        (TOKEN, t68, params).prop_map(|(scheme, token68, params)| {
            let params = if token68.is_some() { Vec::new() } else { params };
            Challenge {
                scheme,
                token68,
                params,
            }
        })
    }

    fn serialize(cs: &[Challenge], loose: bool) -> String {
        let (eq, sep) = if loose { (" = ", " ,, ") } else { ("=", ", ") };
        let render = |c: &Challenge| {
            let ps: Vec<String> = c
                .params
                .iter()
                .map(|(n, v)| format!("{n}{eq}{}", if loose && is_token(v) { v.clone() } else { quote(v) }))
                .collect();
            match &c.token68 {
                Some(t) => format!("{} {t}", c.scheme),
                None if ps.is_empty() => c.scheme.clone(),
                None => format!("{} {}", c.scheme, ps.join(sep)),
            }
        };
        cs.iter().map(render).collect::<Vec<_>>().join(sep)
    }

    proptest! {
        #[test]
        fn arbitrary_input_never_panics(s in any::<String>(), t in "[ ,=\"\\\\aBé\t;]{0,64}") {
            let _ = parse_challenges(&s);
            let _ = bearer_verdict([s.as_str(), t.as_str()]);
        }

        #[test]
        fn byteish_input_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..256)) {
            let s = String::from_utf8_lossy(&bytes);
            let _ = bearer_verdict([s.as_ref()]);
        }

        #[test]
        fn serialized_challenges_round_trip(cs in prop::collection::vec(challenge(), 0..4), loose in any::<bool>()) {
            let expected: Vec<Challenge> = cs.iter().cloned().map(|mut c| {
                c.params.iter_mut().for_each(|(n, _)| n.make_ascii_lowercase());
                c
            }).collect();
            prop_assert_eq!(parse_challenges(&serialize(&cs, loose)), expected);
        }
    }
}
