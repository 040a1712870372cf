//! Legacy password hashes log in and are upgraded; the original Flask users import.

use passport::store::UserRecord;
use serde_json::Value;

use crate::helpers::*;

fn fixture(name: &str) -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/legacy")
        .join(name)
}

fn json_fixture(name: &str) -> Value {
    serde_json::from_str(&std::fs::read_to_string(fixture(name)).unwrap()).unwrap()
}

#[tokio::test]
async fn werkzeug_and_bcrypt_hashes_log_in_and_are_rehashed_to_argon2id() {
    let app = spawn_app().await;
    let hashes = json_fixture("hashes.json");
    let cases = [
        "werkzeug_pbkdf2",
        "werkzeug_pbkdf2_low",
        "werkzeug_scrypt",
        "werkzeug_scrypt_low",
        "bcrypt_2b",
        "bcrypt_2y",
    ];
    for (i, name) in cases.iter().enumerate() {
        let mobile = format!("+86138000002{i:02}");
        let user = UserRecord {
            user_id: 500 + i as i64,
            mobile: mobile.clone(),
            password_hash: hashes[name]["hash"].as_str().unwrap().to_owned(),
            roles: vec!["viewer".into()],
            disabled: false,
            created_at: 1_700_000_000,
            last_login: None,
        };
        assert!(app.state.stores.users.import(&user).await.unwrap());
        let password = hashes[name]["password"].as_str().unwrap();
        assert_error(
            app.login_raw(&mobile, "not the password").await,
            401,
            "invalid_credentials",
        )
        .await;
        let login = assert_ok(app.login_raw(&mobile, password).await, 200).await;
        assert_eq!(login["user_id"], 500 + i as i64, "{name}");
        let stored = app
            .state
            .stores
            .users
            .find_by_mobile(&mobile)
            .await
            .unwrap()
            .unwrap()
            .password_hash;
        assert!(
            stored.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
            "{name} not upgraded: {stored}"
        );
        // The same password keeps working against the new hash.
        assert_ok(app.login_raw(&mobile, password).await, 200).await;
    }
    app.stop().await;
}

async fn import_and_log_in(dir: &std::path::Path, source: &str) {
    let out = run_command(dir, &["user", "import", source], "").await;
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("imported 3, skipped 0 (already present), invalid 2"),
        "{stdout}"
    );
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("5/5"),
        "progress is shown"
    );
    // Idempotent.
    let again = run_command(dir, &["user", "import", source], "").await;
    assert!(String::from_utf8_lossy(&again.stdout).contains("imported 0, skipped 3 (already present), invalid 2"));

    let app = spawn_in(dir, &[]).await;
    for row in json_fixture("flask_users.json").as_array().unwrap() {
        let mobile = row["mobile"].as_str().unwrap();
        if row["valid"] == true {
            let login = assert_ok(app.login_raw(mobile, row["password"].as_str().unwrap()).await, 200).await;
            assert_eq!(login["user_id"], row["user_id"], "ids are kept");
        } else if mobile.chars().all(|c| c.is_ascii_digit()) {
            assert_error(
                app.login_raw(mobile, "whatever-it-was-1").await,
                401,
                "invalid_credentials",
            )
            .await;
        }
    }
    // New users get ids above the imported ones.
    let new_id = assert_ok(app.register("13800000199", PASSWORD).await, 201).await["user_id"]
        .as_i64()
        .unwrap();
    assert!(new_id > 105, "{new_id}");
    app.stop().await;
}

#[tokio::test]
async fn import_from_the_original_sqlite_database() {
    let tmp = tempfile::tempdir().unwrap();
    let source = fixture("flask_users.sqlite").display().to_string();
    import_and_log_in(tmp.path(), &source).await;
}

#[tokio::test]
async fn import_from_the_original_postgres_database() {
    let Some(db) = crate::support::TestDb::create("import_from_the_original_postgres_database").await else {
        return;
    };
    let mut conn = <sqlx::PgConnection as sqlx::Connection>::connect(&db.url)
        .await
        .unwrap();
    let sql = std::fs::read_to_string(fixture("flask_users.sql")).unwrap();
    sqlx::raw_sql(&sql).execute(&mut conn).await.unwrap();
    let tmp = tempfile::tempdir().unwrap();
    import_and_log_in(tmp.path(), &db.url).await;
    // The same import into a PostgreSQL user store.
    let target = crate::support::TestDb::create("import_from_the_original_postgres_database")
        .await
        .unwrap();
    import_into_store(&target.url, &db.url).await;
}

/// Imports `source` into the user store at `target` (not SQLite), logs in as an
/// imported user, and checks that new users get ids above the imported ones.
async fn import_into_store(target: &str, source: &str) {
    let tmp = tempfile::tempdir().unwrap();
    let out = run_command_with(tmp.path(), &[("database_url", target)], &["user", "import", source], "").await;
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("imported 3, skipped 0 (already present), invalid 2"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Again: the store's duplicate keys make every user a skip.
    let again = run_command_with(tmp.path(), &[("database_url", target)], &["user", "import", source], "").await;
    assert!(
        String::from_utf8_lossy(&again.stdout).contains("imported 0, skipped 3 (already present), invalid 2"),
        "{}",
        String::from_utf8_lossy(&again.stderr)
    );
    let app = spawn_in(tmp.path(), &[("database_url", target)]).await;
    assert_ok(app.login_raw("13800000102", "legacy-scrypt-pw").await, 200).await;
    let new_id = assert_ok(app.register("13800000199", PASSWORD).await, 201).await["user_id"]
        .as_i64()
        .unwrap();
    assert!(new_id > 105, "the store's ids continue above imported ids: {new_id}");
    app.stop().await;
}

#[tokio::test]
async fn import_from_the_original_mysql_database() {
    let test = "import_from_the_original_mysql_database";
    let Some(db) = crate::support::TestMysql::create(test).await else {
        return;
    };
    let mut conn = <sqlx::MySqlConnection as sqlx::Connection>::connect(&db.url)
        .await
        .unwrap();
    // The table as SQLAlchemy's MySQL dialect creates it for the Flask model, with
    // the fixture's rows.
    let table = "CREATE TABLE user_login (user_id INTEGER NOT NULL AUTO_INCREMENT, mobile VARCHAR(11), \
                 password_hash VARCHAR(256), last_login DATETIME, last_login_stamp INTEGER, \
                 PRIMARY KEY (user_id), UNIQUE (mobile)) DEFAULT CHARSET = utf8mb4";
    sqlx::raw_sql(table).execute(&mut conn).await.unwrap();
    let sql = std::fs::read_to_string(fixture("flask_users.sql")).unwrap();
    let rows: Vec<&str> = sql.lines().filter(|l| l.starts_with("INSERT")).collect();
    assert_eq!(rows.len(), 5);
    sqlx::raw_sql(&rows.join("\n")).execute(&mut conn).await.unwrap();
    let tmp = tempfile::tempdir().unwrap();
    import_and_log_in(tmp.path(), &db.url).await;
    // The same import into a MariaDB user store.
    let target = crate::support::TestMysql::create(test).await.unwrap();
    import_into_store(&target.url, &db.url).await;
}
