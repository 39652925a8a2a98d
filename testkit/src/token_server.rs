//! A token server for the registry's bearer-token auth (the flow Docker Hub and ghcr use):
//! the registry answers 401 with a `Bearer realm=...` challenge, the client asks this
//! server for a token with basic credentials, and the registry verifies the token's
//! ES256 signature against a certificate it trusts. Runs on a thread on a loopback port.

use std::io::{BufRead as _, BufReader, Write as _};
use std::net::TcpListener;
use std::path::Path;

use base64::Engine as _;
use ring::signature::{EcdsaKeyPair, ECDSA_P256_SHA256_FIXED_SIGNING};

pub const SERVICE: &str = "resin-test";
pub const ISSUER: &str = "resin-test-issuer";

pub struct TokenServer {
    pub realm: String,
}

fn url_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => {
                out.push(u8::from_str_radix(&text[i + 1..i + 3], 16).unwrap_or(b'?'));
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

impl TokenServer {
    /// Starts the server; writes the certificate the registry must trust to `cert_path`.
    pub fn start(user: &str, password: &str, cert_path: &Path) -> TokenServer {
        let certified = rcgen::generate_simple_self_signed(vec![ISSUER.to_string()]).unwrap();
        std::fs::write(cert_path, certified.cert.pem()).unwrap();
        let cert_der = certified.cert.der().to_vec();
        let key = EcdsaKeyPair::from_pkcs8(
            &ECDSA_P256_SHA256_FIXED_SIGNING,
            &certified.key_pair.serialize_der(),
            &ring::rand::SystemRandom::new(),
        )
        .unwrap();
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let realm = format!("http://{}/token", listener.local_addr().unwrap());
        let expected =
            format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}")));
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut request_line = String::new();
                if reader.read_line(&mut request_line).is_err() {
                    continue;
                }
                let mut authorized = false;
                loop {
                    let mut line = String::new();
                    if reader.read_line(&mut line).unwrap_or(0) == 0 || line.trim().is_empty() {
                        break;
                    }
                    if let Some((name, value)) = line.split_once(':') {
                        if name.eq_ignore_ascii_case("authorization") && value.trim() == expected {
                            authorized = true;
                        }
                    }
                }
                if !authorized {
                    let _ = stream
                        .write_all(b"HTTP/1.1 401 Unauthorized\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
                    continue;
                }
                let target = request_line.split_whitespace().nth(1).unwrap_or("");
                let query = target.split_once('?').map_or("", |(_, q)| q);
                let mut access = Vec::new();
                for pair in query.split('&') {
                    if let Some(("scope", scope)) = pair.split_once('=') {
                        let scope = url_decode(scope);
                        let parts: Vec<&str> = scope.split(':').collect();
                        if let [kind, name, actions] = parts.as_slice() {
                            access.push(serde_json::json!({ "type": kind, "name": name, "actions": actions.split(',').collect::<Vec<_>>() }));
                        }
                    }
                }
                let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
                let b64 = |bytes: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
                let header = serde_json::json!({
                    "alg": "ES256",
                    "typ": "JWT",
                    "x5c": [base64::engine::general_purpose::STANDARD.encode(&cert_der)],
                });
                let claims = serde_json::json!({
                    "iss": ISSUER, "sub": "resin", "aud": SERVICE,
                    "exp": now + 600, "nbf": now - 60, "iat": now, "jti": format!("{now}-{}", access.len()),
                    "access": access,
                });
                let signing_input =
                    format!("{}.{}", b64(header.to_string().as_bytes()), b64(claims.to_string().as_bytes()));
                let signature = key.sign(&ring::rand::SystemRandom::new(), signing_input.as_bytes()).unwrap();
                let token = format!("{signing_input}.{}", b64(signature.as_ref()));
                let body = serde_json::json!({ "token": token, "access_token": token, "expires_in": 600 }).to_string();
                let response = format!(
                    "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = stream.write_all(response.as_bytes());
            }
        });
        TokenServer { realm }
    }
}
