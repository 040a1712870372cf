//! SPEC §4: every token below is refused with 401 and never 200. Each is built from
//! the claims of a real, live session, so only the attacked property can fail it;
//! the untouched baseline is checked to pass first.

use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hmac::{Hmac, Mac};
use serde_json::{json, Value};

use crate::helpers::*;

fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

fn mac(alg: &str, key: &[u8], msg: &str) -> Vec<u8> {
    fn run<M: Mac + hmac::digest::KeyInit>(key: &[u8], msg: &str) -> Vec<u8> {
        let mut m = <M as hmac::digest::KeyInit>::new_from_slice(key).unwrap();
        m.update(msg.as_bytes());
        m.finalize().into_bytes().to_vec()
    }
    match alg {
        "HS256" => run::<Hmac<sha2::Sha256>>(key, msg),
        "HS384" => run::<Hmac<sha2::Sha384>>(key, msg),
        "HS512" => run::<Hmac<sha2::Sha512>>(key, msg),
        _ => vec![7u8; 64],
    }
}

/// A compact JWS of `header` and `claims`, signed with HMAC-`alg` under `key`
/// (any other `alg` gets an arbitrary signature).
fn forge(header: &Value, claims: &Value, alg: &str, key: &[u8]) -> String {
    let msg = format!(
        "{}.{}",
        b64(header.to_string().as_bytes()),
        b64(claims.to_string().as_bytes())
    );
    let sig = mac(alg, key, &msg);
    format!("{msg}.{}", b64(&sig))
}

fn segment(token: &str, i: usize) -> Value {
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(token.split('.').nth(i).unwrap()).unwrap()).unwrap()
}

fn with(mut v: Value, key: &str, value: Value) -> Value {
    v[key] = value;
    v
}

fn without(mut v: Value, key: &str) -> Value {
    v.as_object_mut().unwrap().remove(key);
    v
}

#[tokio::test]
async fn forged_and_tampered_tokens_are_refused() {
    let app = spawn_app().await;
    let login = app.signup_and_login("13800000030").await;
    let real = login["token"].as_str().unwrap().to_owned();
    let header = segment(&real, 0);
    let claims = segment(&real, 1);
    let secret = SECRET.as_bytes();
    let now = claims["iat"].as_i64().unwrap();

    // The forging helper is right: an untouched re-signed copy passes.
    let baseline = forge(&header, &claims, "HS256", secret);
    assert_ok(app.me(&baseline).await, 200).await;

    // A local listener that any key fetch (jku, x5u) would have to reach.
    let bait = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let bait_url = format!("http://{}/keys.json", bait.local_addr().unwrap());

    let mut cases: Vec<(&str, String)> = Vec::new();
    for none in ["none", "None", "NONE", "nOnE"] {
        let h = json!({"alg": none, "typ": "JWT"});
        let unsigned = format!(
            "{}.{}.",
            b64(h.to_string().as_bytes()),
            b64(claims.to_string().as_bytes())
        );
        cases.push(("alg none, no signature", unsigned));
        cases.push(("alg none, signed", forge(&h, &claims, "HS256", secret)));
    }
    cases.push((
        "alg hs256 lowercase",
        forge(&with(header.clone(), "alg", json!("hs256")), &claims, "HS256", secret),
    ));
    for alg in ["HS384", "HS512"] {
        cases.push((
            "HS384/HS512 with the real secret",
            forge(&with(header.clone(), "alg", json!(alg)), &claims, alg, secret),
        ));
    }
    for alg in ["RS256", "ES256", "PS256", "EdDSA"] {
        cases.push((
            "asymmetric alg header",
            forge(&with(header.clone(), "alg", json!(alg)), &claims, alg, secret),
        ));
        // Key confusion: the HMAC of the real secret under an asymmetric alg.
        let h = with(header.clone(), "alg", json!(alg));
        let msg = format!(
            "{}.{}",
            b64(h.to_string().as_bytes()),
            b64(claims.to_string().as_bytes())
        );
        cases.push((
            "asymmetric alg, HMAC signature",
            format!("{msg}.{}", b64(&mac("HS256", secret, &msg))),
        ));
    }
    let (msg, _) = baseline.rsplit_once('.').unwrap();
    cases.push(("empty signature", format!("{msg}.")));
    let mut altered = baseline.clone().into_bytes();
    let last = altered.len() - 2;
    altered[last] = if altered[last] == b'A' { b'B' } else { b'A' };
    cases.push(("altered signature", String::from_utf8(altered).unwrap()));
    cases.push((
        "another secret",
        forge(&header, &claims, "HS256", b"another-secret-another-secret-0123456"),
    ));
    cases.push(("empty secret", forge(&header, &claims, "HS256", b"")));
    cases.push((
        "no kid, another secret",
        forge(&without(header.clone(), "kid"), &claims, "HS256", b"x"),
    ));
    cases.push((
        "wrong iss",
        forge(&header, &with(claims.clone(), "iss", json!("evil")), "HS256", secret),
    ));
    cases.push((
        "missing iss",
        forge(&header, &without(claims.clone(), "iss"), "HS256", secret),
    ));
    cases.push((
        "missing exp",
        forge(&header, &without(claims.clone(), "exp"), "HS256", secret),
    ));
    let exp_str = json!((now + 3600).to_string());
    cases.push((
        "exp as a string",
        forge(&header, &with(claims.clone(), "exp", exp_str), "HS256", secret),
    ));
    cases.push((
        "exp as a float",
        forge(&header, &with(claims.clone(), "exp", json!(1e12)), "HS256", secret),
    ));
    cases.push((
        "nbf an hour ahead",
        forge(
            &header,
            &with(claims.clone(), "nbf", json!(now + 3600)),
            "HS256",
            secret,
        ),
    ));
    cases.push((
        "iat an hour ahead",
        forge(
            &header,
            &with(claims.clone(), "iat", json!(now + 3600)),
            "HS256",
            secret,
        ),
    ));
    cases.push((
        "missing sid",
        forge(&header, &without(claims.clone(), "sid"), "HS256", secret),
    ));
    let mut no_id = claims.clone();
    no_id["data"].as_object_mut().unwrap().remove("id");
    cases.push(("missing data.id", forge(&header, &no_id, "HS256", secret)));
    let mut id_str = claims.clone();
    id_str["data"]["id"] = json!(id_str["data"]["id"].to_string());
    cases.push(("data.id as a string", forge(&header, &id_str, "HS256", secret)));
    let mut no_lt = claims.clone();
    no_lt["data"].as_object_mut().unwrap().remove("login_time");
    cases.push(("missing data.login_time", forge(&header, &no_lt, "HS256", secret)));
    cases.push((
        "missing data",
        forge(&header, &without(claims.clone(), "data"), "HS256", secret),
    ));
    cases.push((
        "sub of another user",
        forge(&header, &with(claims.clone(), "sub", json!("999")), "HS256", secret),
    ));
    for kid in ["../../../../../../dev/null", "/etc/passwd", "unknown-kid", ""] {
        cases.push((
            "kid traversal / unknown",
            forge(&with(header.clone(), "kid", json!(kid)), &claims, "HS256", secret),
        ));
    }
    cases.push((
        "typ not JWT",
        forge(&with(header.clone(), "typ", json!("at+jwt")), &claims, "HS256", secret),
    ));
    cases.push((
        "jku header",
        forge(&with(header.clone(), "jku", json!(bait_url)), &claims, "HS256", secret),
    ));
    cases.push((
        "x5u header",
        forge(&with(header.clone(), "x5u", json!(bait_url)), &claims, "HS256", secret),
    ));
    let attacker = b"attacker-chosen-key-attacker-chosen-key";
    let jwk = json!({"kty": "oct", "k": b64(attacker), "alg": "HS256"});
    cases.push((
        "embedded jwk",
        forge(&with(header.clone(), "jwk", jwk), &claims, "HS256", attacker),
    ));
    let jku_own = with(without(header.clone(), "kid"), "jku", json!(bait_url));
    cases.push(("jku with an attacker key", forge(&jku_own, &claims, "HS256", attacker)));
    cases.push(("two segments", msg.to_owned()));
    cases.push(("four segments", format!("{baseline}.x")));
    cases.push(("not JSON inside", "abc.def.ghi".to_owned()));

    for (what, token) in &cases {
        let r = app.me(token).await;
        assert_eq!(r.status().as_u16(), 401, "{what}: {token}");
        let body: Value = r.json().await.unwrap();
        assert_eq!(body["error"], "invalid_token", "{what}: {body}");
    }

    // No key was ever fetched.
    let fetched = tokio::time::timeout(Duration::from_millis(300), bait.accept()).await;
    assert!(fetched.is_err(), "the server connected to a URL from a token header");

    // The real token still works after all that.
    assert_ok(app.me(&real).await, 200).await;
    app.stop().await;
}

#[tokio::test]
async fn expired_tokens_answer_token_expired() {
    let app = spawn_app_with(&[("leeway", "30")]).await;
    let login = app.signup_and_login("13800000031").await;
    let real = login["token"].as_str().unwrap();
    let header = segment(real, 0);
    let claims = segment(real, 1);
    let now = claims["iat"].as_i64().unwrap();

    let expired = forge(
        &header,
        &with(claims.clone(), "exp", json!(now - 3600)),
        "HS256",
        SECRET.as_bytes(),
    );
    assert_error(app.me(&expired).await, 401, "token_expired").await;
    // Inside the leeway it still works.
    let recent = forge(
        &header,
        &with(claims.clone(), "exp", json!(now - 5)),
        "HS256",
        SECRET.as_bytes(),
    );
    assert_ok(app.me(&recent).await, 200).await;
    app.stop().await;
}
