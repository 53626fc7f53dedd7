//! Hostile HTTP: about 2,000 generated requests, sent over raw TCP so nothing is normalised on the
//! way — garbage percent-encoding, NUL and control characters, 100 KB URLs, 8 KB tokens, bodies
//! over the limit, SQL- and NoSQL-looking values, repeated parameters and headers, odd methods and
//! wrong content types. Every answer is checked against an oracle: never a 5xx, never a 200 that
//! is not due (and a due one is byte-exact), never a hang, and the server still serves the demo
//! request byte for byte afterwards.
//!
//! The generator is deterministic (`HOSTILE_SEED` replays another run).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use inquiryd::api::errors::InvalidParams;
use inquiryd::api::livechat::parse_room_id;
use inquiryd::app::{DEMO_TOKEN, DEMO_USER_ID};

use crate::helpers::*;

const GET_ONE: &str = "/api/v1/livechat/inquiries.getOne";
const DEFAULT_SEED: u64 = 0x1D5E_ED00_0006;
/// No single answer may take longer than this: a slower one is a hang.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(10);

/// What a case allows.
enum Oracle {
    /// `GET getOne` with working credentials and this raw query: the exact answer is computable.
    GetOneAuthed { query: Vec<u8> },
    /// `GET getOne?roomId=DEMO_ROOM` with these credential headers, valid or not.
    Credentials { valid: bool, malformed: bool },
    /// Anything but a 5xx or a 200, from this set when given; `answer` when the server must answer.
    No200 {
        allowed: &'static [u16],
        answer: bool,
        /// The HTTP layer may refuse the request (a malformed header) with a bare 400.
        http_400_ok: bool,
    },
    /// A method/path combination; 200 only where `may_200`.
    Route { may_200: bool },
}

struct Case {
    kind: &'static str,
    request: Vec<u8>,
    oracle: Oracle,
    /// Half-close after sending (for deliberately incomplete requests).
    shutdown: bool,
}

fn build(method: &[u8], target: &[u8], headers: &[(&[u8], &[u8])], body: &[u8]) -> Vec<u8> {
    let mut r = Vec::with_capacity(target.len() + body.len() + 256);
    r.extend_from_slice(method);
    r.push(b' ');
    r.extend_from_slice(target);
    r.extend_from_slice(b" HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n");
    for (name, value) in headers {
        r.extend_from_slice(name);
        r.extend_from_slice(b": ");
        r.extend_from_slice(value);
        r.extend_from_slice(b"\r\n");
    }
    r.extend_from_slice(b"\r\n");
    r.extend_from_slice(body);
    r
}

fn demo_headers() -> Vec<(&'static [u8], &'static [u8])> {
    vec![
        (b"X-User-Id", DEMO_USER_ID.as_bytes()),
        (b"X-Auth-Token", DEMO_TOKEN.as_bytes()),
    ]
}

const SQLISH: &[&str] = &[
    "' OR '1'='1",
    "\" OR \"\"=\"",
    "1; DROP TABLE inquiries; --",
    "x' UNION SELECT hashed_token, user_id, 1 FROM tokens --",
    "%' AND 1=0 UNION SELECT sqlite_version() --",
    "'); DELETE FROM tokens; --",
    "1 OR 1=1",
];
const NOSQLISH: &[&str] = &[
    "{\"$ne\":null}",
    "{\"$gt\":\"\"}",
    "{\"$regex\":\".*\"}",
    "{\"$where\":\"sleep(1000)\"}",
    "';return true;var a='",
    "[$ne]=1",
    "__proto__",
];

/// One query-string value, raw (possibly not even a legal URI).
fn query_value(rng: &mut Rng) -> Vec<u8> {
    match rng.below(12) {
        0 => DEMO_ROOM.into(),
        1 => Vec::new(),
        2 => rng.pick(SQLISH).as_bytes().to_vec(),
        3 => rng.pick(NOSQLISH).as_bytes().to_vec(),
        4 => {
            let bad: &[&str] = &[
                "%",
                "%Z",
                "%0",
                "%00",
                "%FF",
                "%C3%28",
                "%E2%82",
                "%%",
                "%25",
                "+",
                "%2B",
                "%26roomId%3Dx",
                "%0D%0A",
                "%u0041",
                "%ZZ%",
                "%F0%9F%92",
            ];
            let mut v = Vec::new();
            for _ in 0..1 + rng.below(5) {
                v.extend_from_slice(rng.pick(bad).as_bytes());
                if rng.chance(30) {
                    v.extend_from_slice(DEMO_ROOM.as_bytes());
                }
            }
            v
        }
        5 => vec![b'A'; 8 * 1024],
        6 => {
            // Random bytes, percent-encoded (always a legal URI).
            let mut v = Vec::new();
            for _ in 0..rng.below(40) {
                v.extend_from_slice(format!("%{:02X}", rng.below(256)).as_bytes());
            }
            v
        }
        7 => {
            // Random printable ASCII, raw (some not legal in a URI).
            (0..rng.below(40))
                .map(|_| 0x21 + rng.below(0x5e) as u8)
                .filter(|b| *b != b'#')
                .collect()
        }
        8 => {
            // Control characters and NUL, raw.
            let mut v = DEMO_ROOM.as_bytes().to_vec();
            v.insert(rng.below(v.len()), rng.below(0x20) as u8);
            v
        }
        9 => {
            // Raw non-ASCII bytes.
            (0..1 + rng.below(10))
                .map(|_| 0x80 + rng.below(0x80) as u8)
                .collect()
        }
        10 => format!("{DEMO_ROOM}%00").into_bytes(),
        _ => DEMO_ROOM.to_lowercase().into_bytes(),
    }
}

fn query_pair(rng: &mut Rng) -> Vec<u8> {
    let key: &[u8] = match rng.below(14) {
        0..=5 => b"roomId=",
        6 => b"roomId[$ne]=",
        7 => b"roomId[]=",
        8 => b"roomId[$regex]=",
        9 => b"%72oomId=",
        10 => b"roomid=",
        11 => b"__proto__[roomId]=",
        12 => b"roomId",
        _ => {
            return rng
                .pick(&[
                    &b"foo=bar"[..],
                    b"=",
                    b"&",
                    b";",
                    b"a=1&a=2",
                    b"constructor=1",
                ])
                .to_vec();
        }
    };
    let mut v = key.to_vec();
    v.extend(query_value(rng));
    v
}

fn query_cases(rng: &mut Rng, n: usize, out: &mut Vec<Case>) {
    for _ in 0..n {
        let mut query = Vec::new();
        let pairs = match rng.below(20) {
            0..=11 => 1,
            12..=16 => 2,
            _ => 3,
        };
        for i in 0..pairs {
            if i > 0 {
                query.push(if rng.chance(90) { b'&' } else { b';' });
            }
            query.extend(query_pair(rng));
        }
        let mut target = GET_ONE.as_bytes().to_vec();
        target.push(b'?');
        target.extend_from_slice(&query);
        out.push(Case {
            kind: "query",
            request: build(b"GET", &target, &demo_headers(), b""),
            oracle: Oracle::GetOneAuthed { query },
            shutdown: false,
        });
    }
}

/// A raw header: name and value bytes.
type Header = (Vec<u8>, Vec<u8>);

/// One credential header value: often the right one, else a near miss or something hostile.
fn cred_value(rng: &mut Rng, good: &str) -> Vec<u8> {
    match rng.below(16) {
        0..=4 => good.into(),
        5 => Vec::new(),
        6 => rng.pick(SQLISH).as_bytes().to_vec(),
        7 => rng.pick(NOSQLISH).as_bytes().to_vec(),
        8 => (0..8 * 1024)
            .map(|_| *rng.pick(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"))
            .collect(),
        9 => format!("{good}x").into_bytes(),
        10 => good[..good.len() - 1].into(),
        11 => good.to_uppercase().into_bytes(),
        // The stored form of the demo token: passing the hash must not work.
        12 => {
            use base64::Engine;
            use sha2::Digest;
            base64::engine::general_purpose::STANDARD
                .encode(sha2::Sha256::digest(DEMO_TOKEN.as_bytes()))
                .into_bytes()
        }
        13 => {
            let mut v = good.as_bytes().to_vec();
            v.insert(rng.below(v.len()), rng.below(0x20) as u8);
            v
        }
        14 => (0..1 + rng.below(20))
            .map(|_| 0x80 + rng.below(0x80) as u8)
            .collect(),
        _ => [
            &b"null"[..],
            b"undefined",
            b"0",
            b"[]",
            b"{}",
            b"Bearer x",
            b"true",
        ][rng.below(7)]
        .to_vec(),
    }
}

fn has_ctl(v: &[u8]) -> bool {
    v.iter().any(|b| (*b < 0x20 && *b != b'\t') || *b == 0x7f)
}

fn credential_cases(rng: &mut Rng, n: usize, out: &mut Vec<Case>) {
    let target = format!("{GET_ONE}?roomId={DEMO_ROOM}");
    for _ in 0..n {
        let id = cred_value(rng, DEMO_USER_ID);
        let token = cred_value(rng, DEMO_TOKEN);
        let good = id == DEMO_USER_ID.as_bytes() && token == DEMO_TOKEN.as_bytes();
        let malformed = has_ctl(&id) || has_ctl(&token);
        let (headers, valid): (Vec<Header>, bool) = match rng.below(8) {
            // Names in another case, values padded with optional whitespace: still valid.
            0 => (
                vec![
                    (b"x-user-id".to_vec(), id),
                    (
                        b"X-AUTH-TOKEN".to_vec(),
                        [b" \t".as_slice(), &token, b" "].concat(),
                    ),
                ],
                good,
            ),
            // One header missing.
            1 => (vec![(b"X-Auth-Token".to_vec(), token)], false),
            2 => (vec![(b"X-User-Id".to_vec(), id)], false),
            // Repeated headers: ambiguous credentials are refused, as Rocket.Chat (which sees
            // the values joined with ", ") does.
            3 => (
                vec![
                    (b"X-User-Id".to_vec(), id),
                    (b"X-Auth-Token".to_vec(), token),
                    (b"X-Auth-Token".to_vec(), b"other".to_vec()),
                ],
                false,
            ),
            4 => (
                vec![
                    (b"X-User-Id".to_vec(), b"someone".to_vec()),
                    (b"X-User-Id".to_vec(), id),
                    (b"X-Auth-Token".to_vec(), token),
                ],
                false,
            ),
            // Near-miss names.
            5 => (
                vec![
                    (b"X-User_Id".to_vec(), id),
                    (b"X-Auth-Token2".to_vec(), token),
                ],
                false,
            ),
            _ => (
                vec![
                    (b"X-User-Id".to_vec(), id),
                    (b"X-Auth-Token".to_vec(), token),
                ],
                good,
            ),
        };
        let refs: Vec<(&[u8], &[u8])> = headers
            .iter()
            .map(|(n, v)| (n.as_slice(), v.as_slice()))
            .collect();
        out.push(Case {
            kind: "credentials",
            request: build(b"GET", target.as_bytes(), &refs, b""),
            oracle: Oracle::Credentials {
                valid: valid && !malformed,
                malformed,
            },
            shutdown: false,
        });
    }
}

fn method_cases(rng: &mut Rng, n: usize, out: &mut Vec<Case>) {
    let methods: &[&[u8]] = &[
        b"GET",
        b"POST",
        b"PUT",
        b"DELETE",
        b"PATCH",
        b"HEAD",
        b"OPTIONS",
        b"TRACE",
        b"PROPFIND",
        b"get",
        b"Get",
        b"G\x00T",
        b"GET(",
        b"M-SEARCH",
        b"BREW",
        b"QUERY",
    ];
    let paths: &[&str] = &[
        "/api/v1/livechat/inquiries.getOne?roomId=yy8SmYKfHQ6GZdnJp",
        "/api/v1/livechat/inquiries.getOne",
        "/api/v1/login",
        "/api/v1/logout",
        "/api/v1/me",
        "/api/info",
        "/health",
        "/",
        "/api/v1/unknown",
        "/api/v1/livechat/inquiries.getOne/../../../etc/passwd",
        "//api/v1/me",
        "/api/v1/./me",
        "/api/v1/livechat/inquiries.getOne%00",
        "/API/V1/ME",
        "/%2e%2e/%2e%2e/etc/passwd",
        "*",
        "http://evil.example/api/v1/me",
    ];
    for _ in 0..n {
        let mut method = rng.pick(methods).to_vec();
        if rng.chance(3) {
            method = vec![b'X'; 1024];
        }
        let path = *rng.pick(paths);
        // Never log the demo out: that would revoke the token the rest of the run uses.
        let authed = path != "/api/v1/logout" && rng.chance(60);
        let headers = if authed { demo_headers() } else { Vec::new() };
        let body: &[u8] = if rng.chance(20) { b"{\"x\":1}" } else { b"" };
        let mut hs = headers.clone();
        let len = body.len().to_string();
        if !body.is_empty() {
            hs.push((b"Content-Type", b"application/json"));
            hs.push((b"Content-Length", len.as_bytes()));
        }
        let is_get = method == b"GET";
        // The absolute form (`GET http://host/path`) is valid HTTP and means the path.
        let effective = path
            .strip_prefix("http://")
            .and_then(|p| p.find('/').map(|i| &p[i..]))
            .unwrap_or(path);
        let may_200 = is_get
            && match effective {
                "/api/info" | "/health" => true,
                "/api/v1/me" => authed,
                p => p == format!("{GET_ONE}?roomId={DEMO_ROOM}") && authed,
            };
        out.push(Case {
            kind: "method",
            request: build(&method, path.as_bytes(), &hs, body),
            oracle: Oracle::Route { may_200 },
            shutdown: false,
        });
    }
}

fn login_body(rng: &mut Rng) -> Vec<u8> {
    let s = |rng: &mut Rng| -> String {
        match rng.below(5) {
            0 => rng.pick(SQLISH).to_string(),
            1 => "demo.agent".into(),
            2 => "A".repeat(8 * 1024),
            3 => "\u{0}\u{1}\u{7f}é\u{202e}".into(),
            _ => format!("user{}", rng.below(1000)),
        }
    };
    match rng.below(14) {
        0 => serde_json::json!({"user": s(rng), "password": s(rng)})
            .to_string()
            .into_bytes(),
        1 => serde_json::json!({"username": s(rng), "password": {"digest": s(rng), "algorithm": "sha-256"}})
            .to_string()
            .into_bytes(),
        2 => format!(
            "{{\"user\":{},\"password\":{}}}",
            rng.pick(NOSQLISH),
            rng.pick(NOSQLISH)
        )
        .into_bytes(),
        3 => br#"{"user":"demo.agent","password":{"$gt":""}}"#.to_vec(),
        4 => br#"{"user":{"$ne":null},"password":{"$ne":null}}"#.to_vec(),
        5 => serde_json::json!({"resume": s(rng)}).to_string().into_bytes(),
        6 => br#"{"resume":{"$ne":null}}"#.to_vec(),
        7 => {
            use base64::Engine;
            use sha2::Digest;
            let hashed = base64::engine::general_purpose::STANDARD
                .encode(sha2::Sha256::digest(DEMO_TOKEN.as_bytes()));
            format!("{{\"resume\":\"{hashed}\"}}").into_bytes()
        }
        8 => (0..rng.below(200)).map(|_| rng.below(256) as u8).collect(),
        9 => [b"[".repeat(20_000), b"]".repeat(20_000)].concat(),
        10 => b"{\"user\":\"a\xff\xfe\",\"password\":\"b\"}".to_vec(),
        11 => br#"{"user":"a","user":"demo.agent","password":"x","password":"y"}"#.to_vec(),
        12 => br#"{"user":"a","password":1e999999}"#.to_vec(),
        _ => b"user=demo.agent&password=x".to_vec(),
    }
}

fn body_cases(rng: &mut Rng, n: usize, out: &mut Vec<Case>) {
    let types: &[&[u8]] = &[
        b"application/json",
        b"application/json; charset=utf-16",
        b"text/plain",
        b"application/x-www-form-urlencoded",
        b"multipart/form-data; boundary=xyz",
        b"application/xml",
        b"\x01\x02",
        b"",
    ];
    for _ in 0..n {
        let ct = *rng.pick(types);
        let mut headers: Vec<(&[u8], Vec<u8>)> = Vec::new();
        if !ct.is_empty() {
            headers.push((b"Content-Type", ct.to_vec()));
        }
        let (body, allowed, kind): (Vec<u8>, &'static [u16], &'static str) = match rng.below(10) {
            // Over the limit, declared.
            0 => {
                let body = vec![b'{'; 64 * 1024 + 1 + rng.below(64 * 1024)];
                headers.push((b"Content-Length", body.len().to_string().into_bytes()));
                (body, &[413], "body-over-limit")
            }
            // Over the limit, chunked: no length to reject up front.
            1 => {
                let mut body = Vec::new();
                for _ in 0..9 {
                    body.extend_from_slice(b"2000\r\n");
                    body.extend(std::iter::repeat_n(b' ', 0x2000));
                    body.extend_from_slice(b"\r\n");
                }
                body.extend_from_slice(b"0\r\n\r\n");
                headers.push((b"Transfer-Encoding", b"chunked".to_vec()));
                (body, &[413], "body-chunked-over-limit")
            }
            // A huge declared length with a tiny body: refused before reading.
            2 => {
                headers.push((b"Content-Length", b"1000000000000".to_vec()));
                (b"{}".to_vec(), &[413], "body-huge-length")
            }
            // Smuggling-shaped framing.
            3 => {
                let body = login_body(rng);
                headers.push((b"Content-Length", body.len().to_string().into_bytes()));
                headers.push((b"Transfer-Encoding", b"chunked".to_vec()));
                (body, &[400, 401, 429], "body-te-and-cl")
            }
            4 => {
                let body = login_body(rng);
                headers.push((b"Content-Length", body.len().to_string().into_bytes()));
                headers.push((b"Content-Length", b"3".to_vec()));
                (body, &[400], "body-two-lengths")
            }
            _ => {
                let body = login_body(rng);
                headers.push((b"Content-Length", body.len().to_string().into_bytes()));
                (body, &[400, 401, 429], "body-login")
            }
        };
        let refs: Vec<(&[u8], &[u8])> = headers.iter().map(|(n, v)| (*n, v.as_slice())).collect();
        out.push(Case {
            kind,
            request: build(b"POST", b"/api/v1/login", &refs, &body),
            oracle: Oracle::No200 {
                allowed,
                answer: true,
                http_400_ok: has_ctl(ct),
            },
            shutdown: false,
        });
    }
}

fn long_cases(out: &mut Vec<Case>) {
    let big = "A".repeat(100 * 1024);
    let huge = "A".repeat(200 * 1024);
    let one = format!("{GET_ONE}?roomId={DEMO_ROOM}");
    let many_params = format!("{GET_ONE}?{}", "roomId=x&".repeat(12_000));
    let many_headers: Vec<(Vec<u8>, Vec<u8>)> = (0..2_000)
        .map(|i| (format!("X-H{i}").into_bytes(), b"v".to_vec()))
        .collect();
    let refs: Vec<(&[u8], &[u8])> = many_headers
        .iter()
        .map(|(n, v)| (n.as_slice(), v.as_slice()))
        .collect();
    let token = |t: &str| -> Vec<u8> {
        build(
            b"GET",
            one.as_bytes(),
            &[
                (b"X-User-Id", DEMO_USER_ID.as_bytes()),
                (b"X-Auth-Token", t.as_bytes()),
            ],
            b"",
        )
    };
    // URLs are capped at 64 KiB (400); a whole head at 128 KiB (431). A long token under the cap is
    // just a wrong token (401).
    let cases: Vec<(&'static str, Vec<u8>, &'static [u16])> = vec![
        (
            "long-query",
            build(
                b"GET",
                format!("{GET_ONE}?roomId={big}").as_bytes(),
                &demo_headers(),
                b"",
            ),
            &[400, 414, 431],
        ),
        (
            "long-path",
            build(b"GET", format!("/{big}").as_bytes(), &demo_headers(), b""),
            &[400, 404, 414, 431],
        ),
        (
            "long-params",
            build(b"GET", many_params.as_bytes(), &demo_headers(), b""),
            &[400, 414, 431],
        ),
        ("long-token", token(&big), &[401, 431]),
        ("huge-token", token(&huge), &[431]),
        (
            "many-headers",
            build(b"GET", one.as_bytes(), &refs, b""),
            &[431],
        ),
    ];
    for (kind, request, allowed) in cases {
        for _ in 0..4 {
            out.push(Case {
                kind,
                request: request.clone(),
                oracle: Oracle::No200 {
                    allowed,
                    answer: true,
                    http_400_ok: false,
                },
                shutdown: false,
            });
        }
    }
}

fn raw_cases(rng: &mut Rng, n: usize, out: &mut Vec<Case>) {
    let fixed: &[&[u8]] = &[
        b"\r\n\r\n",
        b"GET\r\n\r\n",
        b"GET / HTTP/9.9\r\nHost: x\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: x\r\n no-colon-fold\r\n\r\n",
        b"GET / HTTP/1.1\r\nNoColonHere\r\n\r\n",
        b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
        b"GET /api/info HTTP/1.0\r\n\r\n",
        b"GET /api/info\r\n\r\n",
        b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03",
        b"GET /api/info HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n",
        b"GET /api/info HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n",
        b"POST /api/v1/login HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nZZZ\r\nxx\r\n0\r\n\r\n",
        b"POST /api/v1/login HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n",
        b"GET /api/info HTTP/1.1\r\nHost: x\r\nX-Auth-Token: a\x00b\r\n\r\n",
        b"GET /api/info HTTP/1.1\r\nHost: x\r\nX-Auth-Token: a\rb\r\n\r\n",
    ];
    for request in fixed {
        out.push(Case {
            kind: "raw-malformed",
            request: request.to_vec(),
            oracle: Oracle::Route { may_200: true },
            shutdown: true,
        });
    }
    for _ in 0..n {
        let mut request: Vec<u8> = if rng.chance(50) {
            b"GET /api/v1/me HTTP/1.1\r\n".to_vec()
        } else {
            Vec::new()
        };
        request.extend((0..1 + rng.below(600)).map(|_| rng.below(256) as u8));
        request.extend_from_slice(b"\r\n\r\n");
        out.push(Case {
            kind: "raw-garbage",
            request,
            oracle: Oracle::No200 {
                allowed: &[],
                answer: false,
                http_400_ok: true,
            },
            shutdown: true,
        });
    }
    // Incomplete requests, then the client goes away: the server must not wait for them.
    for _ in 0..20 {
        let full = build(
            b"POST",
            b"/api/v1/login",
            &[(b"Content-Length", b"40")],
            b"{\"user\":\"a\"",
        );
        let cut = rng.below(full.len());
        out.push(Case {
            kind: "raw-truncated",
            request: full[..cut].to_vec(),
            oracle: Oracle::No200 {
                allowed: &[],
                answer: false,
                http_400_ok: true,
            },
            shutdown: true,
        });
    }
}

/// The RFC 3986 query characters; a server may refuse anything else at the HTTP level.
fn rfc_query(q: &[u8]) -> bool {
    q.iter()
        .all(|b| b.is_ascii_alphanumeric() || b"-._~!$&'()*+,;=:@/?%".contains(b))
}

fn param_error(kind: InvalidParams) -> String {
    error_fixture(match kind {
        InvalidParams::MissingRoomId => "400-missing-roomId",
        InvalidParams::AdditionalProperty => "400-additional-property",
        InvalidParams::RoomIdNotString => "400-roomId-twice",
    })
    .1
}

/// `None` when the answer is acceptable, else why not.
fn judge(case: &Case, r: &RawResp, fixture: &str, unauth: &str) -> Option<String> {
    let body = String::from_utf8_lossy(&r.body);
    if r.status >= 500 {
        return Some(format!("server error {}: {body}", r.status));
    }
    // A 400 the HTTP layer gave before any handler ran (an empty or non-JSON body).
    let http_level_400 = r.status == 400 && !body.starts_with('{');
    match &case.oracle {
        Oracle::GetOneAuthed { query } => {
            let expected = match std::str::from_utf8(query).map(parse_room_id) {
                Ok(Ok(room)) if room == DEMO_ROOM => (200, fixture.to_string()),
                Ok(Ok(_)) => (200, r#"{"inquiry":null,"success":true}"#.to_string()),
                Ok(Err(kind)) => (400, param_error(kind)),
                Err(_) => (400, String::new()),
            };
            if (r.status, body.as_ref()) == (expected.0, expected.1.as_str()) {
                return None;
            }
            if http_level_400 && !rfc_query(query) {
                return None;
            }
            Some(format!(
                "expected {} {}, got {} {body}",
                expected.0, expected.1, r.status
            ))
        }
        Oracle::Credentials { valid, malformed } => {
            let ok = if *valid {
                r.status == 200 && body == fixture
            } else {
                (r.status == 401 && body == unauth) || (*malformed && http_level_400)
            };
            (!ok).then(|| format!("credentials valid={valid}: got {} {body}", r.status))
        }
        Oracle::No200 {
            allowed,
            answer,
            http_400_ok,
        } => {
            if r.status == 200 {
                return Some(format!("200 not due: {body}"));
            }
            if r.status == 0 {
                return answer.then(|| "no answer".to_string());
            }
            if http_level_400 && *http_400_ok {
                return None;
            }
            if !allowed.is_empty() && !allowed.contains(&r.status) {
                return Some(format!("status {} not in {allowed:?}: {body}", r.status));
            }
            None
        }
        Oracle::Route { may_200 } => {
            if r.status == 200 && !may_200 {
                return Some(format!("200 not due: {body}"));
            }
            if r.status == 405 && !r.head.to_ascii_lowercase().contains("\r\nallow: ") {
                return Some("405 without Allow".into());
            }
            if r.status == 200 && body.contains("\"inquiry\"") && body != fixture {
                return Some(format!("wrong 200 body: {body}"));
            }
            None
        }
    }
}

fn escape(bytes: &[u8]) -> String {
    let s: String = bytes
        .iter()
        .take(300)
        .flat_map(|b| std::ascii::escape_default(*b))
        .map(char::from)
        .collect();
    if bytes.len() > 300 {
        format!("{s}… ({} bytes)", bytes.len())
    } else {
        s
    }
}

fn send(addr: &str, case: &Case) -> std::io::Result<RawResp> {
    if !case.shutdown {
        return raw_exchange(addr, &case.request, ANSWER_TIMEOUT);
    }
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(addr)?;
    stream.set_read_timeout(Some(ANSWER_TIMEOUT))?;
    let _ = stream.write_all(&case.request);
    let _ = stream.shutdown(std::net::Shutdown::Write);
    let mut data = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => data.extend_from_slice(&buf[..n]),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                return Err(e);
            }
            Err(_) => break,
        }
    }
    let end = data
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|p| p + 4);
    let head = String::from_utf8_lossy(&data[..end.unwrap_or(0)]).into_owned();
    Ok(RawResp {
        status: head
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or(0),
        head,
        body: end.map_or_else(Vec::new, |e| data[e..].to_vec()),
    })
}

#[test]
fn hostile_requests_never_get_a_5xx_an_undue_200_or_a_hang() {
    let app = spawn_app();
    let addr = app.base.trim_start_matches("http://").to_string();
    let fixture = fixture_compact("inquiries.getOne.200.json");
    let unauth = error_fixture("401-not-logged-in").1;
    let seed = std::env::var("HOSTILE_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(DEFAULT_SEED);
    let mut rng = Rng::new(seed);
    let mut cases = Vec::new();
    query_cases(&mut rng, 650, &mut cases);
    credential_cases(&mut rng, 550, &mut cases);
    method_cases(&mut rng, 350, &mut cases);
    body_cases(&mut rng, 250, &mut cases);
    long_cases(&mut cases);
    raw_cases(&mut rng, 150, &mut cases);

    let started = Instant::now();
    let mut failures = Vec::new();
    let mut by_kind: BTreeMap<&str, BTreeMap<u16, usize>> = BTreeMap::new();
    let mut slowest = Duration::ZERO;
    for (i, case) in cases.iter().enumerate() {
        let t = Instant::now();
        let verdict = match send(&addr, case) {
            Ok(r) => {
                *by_kind
                    .entry(case.kind)
                    .or_default()
                    .entry(r.status)
                    .or_default() += 1;
                judge(case, &r, &fixture, &unauth)
            }
            Err(e) => Some(format!("no answer within {ANSWER_TIMEOUT:?}: {e}")),
        };
        slowest = slowest.max(t.elapsed());
        if let Some(why) = verdict {
            failures.push(format!(
                "#{i} {}: {why}\n    request: {}",
                case.kind,
                escape(&case.request)
            ));
        }
    }
    let elapsed = started.elapsed();

    // Still serving, byte for byte.
    let r = app.get_one(DEMO_ROOM, demo());
    assert_eq!((r.status, r.body.as_str()), (200, fixture.as_str()));
    assert_eq!(app.get("/health", None).status, 200);

    eprintln!(
        "hostile: seed {seed}, {} requests in {elapsed:?} (slowest {slowest:?}), {} failures",
        cases.len(),
        failures.len()
    );
    for (kind, statuses) in &by_kind {
        eprintln!("  {kind:<24} {statuses:?}");
    }
    assert!(
        failures.is_empty(),
        "{} of {} hostile requests got a wrong answer:\n{}",
        failures.len(),
        cases.len(),
        failures
            .iter()
            .take(30)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n")
    );
}
