//! The database drivers' DSN grammars, as the server's drivers read them: go-sql-driver/mysql
//! v1.9.3 `ParseDSN` (dsn.go) and pgx v5 `ParseConfig` (pgconn/config.go@v5.6.0, @v5.9.1). Used
//! by the contract tests (a DSN the driver would misread fails them) and by the stand-in server
//! to find the database it must reach.
use std::collections::BTreeMap;

/// A parsed go-sql-driver DSN `[user[:password]@][net[(addr)]]/dbname[?params]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MysqlDsn {
    pub user: String,
    pub password: Option<String>,
    pub net: String,
    pub addr: String,
    pub db: String,
    pub params: BTreeMap<String, String>,
}

fn percent_decode(s: &str) -> Result<String, String> {
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = s
                .get(i + 1..i + 3)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or_else(|| format!("invalid escape in {s:?}"))?;
            out.push(hex);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|e| e.to_string())
}

/// go-sql-driver's `ParseDSN`: the last `/` starts the database, the last `@` before it ends
/// the credentials, the first `:` in them ends the user; an address needs `net(addr)`; the
/// database is path-unescaped; `tcp` addresses get port 3306 when they have none.
pub fn parse_mysql(dsn: &str) -> Result<MysqlDsn, String> {
    let slash = dsn
        .rfind('/')
        .ok_or_else(|| "invalid DSN: missing the slash separating the database name".to_string())?;
    let left = &dsn[..slash];
    let (creds, proto) = match left.rfind('@') {
        Some(at) => (Some(&left[..at]), &left[at + 1..]),
        None => (None, left),
    };
    let (user, password) = match creds {
        Some(c) => match c.split_once(':') {
            Some((u, p)) => (u.to_string(), Some(p.to_string())),
            None => (c.to_string(), None),
        },
        None => (String::new(), None),
    };
    let (net, addr) = match proto.find('(') {
        Some(open) => {
            if !proto.ends_with(')') {
                return Err(
                    "invalid DSN: network address not terminated (missing closing brace)".into(),
                );
            }
            (
                proto[..open].to_string(),
                proto[open + 1..proto.len() - 1].to_string(),
            )
        }
        None => (proto.to_string(), String::new()),
    };
    let right = &dsn[slash + 1..];
    let (db, query) = match right.split_once('?') {
        Some((d, q)) => (d, Some(q)),
        None => (right, None),
    };
    let mut params = BTreeMap::new();
    for kv in query.into_iter().flat_map(|q| q.split('&')) {
        let (k, v) = kv
            .split_once('=')
            .ok_or_else(|| format!("invalid DSN: invalid parameter {kv:?}"))?;
        params.insert(k.to_string(), percent_decode(&v.replace('+', " "))?);
    }
    let net = if net.is_empty() {
        "tcp".to_string()
    } else {
        net
    };
    let mut addr = addr;
    if net == "tcp" {
        if addr.is_empty() {
            addr = "127.0.0.1:3306".into();
        } else if !(addr
            .rsplit_once(':')
            .is_some_and(|(h, _)| !h.ends_with(':'))
            && (addr.starts_with('[') == addr.contains("]:") || !addr.starts_with('[')))
        {
            addr = format!("{addr}:3306");
        }
    }
    Ok(MysqlDsn {
        user,
        password,
        net,
        addr,
        db: percent_decode(db)?,
        params,
    })
}

/// Connection keys pgx knows; any other key is sent to PostgreSQL as a run-time parameter
/// (pgconn/config.go@v5.6.0:309-328; v5.9.1:340-362 adds the last four).
pub const PGX_KEYS_V5_6: &[&str] = &[
    "host",
    "port",
    "database",
    "user",
    "password",
    "passfile",
    "connect_timeout",
    "sslmode",
    "sslkey",
    "sslcert",
    "sslrootcert",
    "sslpassword",
    "sslsni",
    "krbspn",
    "krbsrvname",
    "target_session_attrs",
    "service",
    "servicefile",
];
pub const PGX_KEYS_V5_9_EXTRA: &[&str] = &[
    "sslnegotiation",
    "min_protocol_version",
    "max_protocol_version",
    "channel_binding",
];

/// pgx's keyword/value grammar (pgconn/config.go@v5.6.0:537-610): `key=value` separated by
/// white space, values bare (backslash escapes) or single-quoted; `dbname` means `database`.
pub fn parse_pg_key_value(s: &str) -> Result<BTreeMap<String, String>, String> {
    let mut out = BTreeMap::new();
    let mut s = s.trim_start();
    while !s.is_empty() {
        let eq = s.find('=').ok_or("invalid keyword/value")?;
        let key = s[..eq].trim().to_string();
        s = s[eq + 1..].trim_start();
        let mut val = String::new();
        if let Some(q) = s.strip_prefix('\'') {
            let mut chars = q.char_indices();
            let mut end = None;
            while let Some((i, c)) = chars.next() {
                match c {
                    '\\' => {
                        if let Some((_, n)) = chars.next() {
                            val.push(n);
                        }
                    }
                    '\'' => {
                        end = Some(i);
                        break;
                    }
                    c => val.push(c),
                }
            }
            let end = end.ok_or("unterminated quoted string in connection info string")?;
            s = q[end + 1..].trim_start();
        } else {
            let mut chars = s.char_indices();
            let mut end = s.len();
            while let Some((i, c)) = chars.next() {
                if c.is_ascii_whitespace() {
                    end = i;
                    break;
                }
                if c == '\\' {
                    match chars.next() {
                        Some((_, n)) => val.push(n),
                        None => return Err("invalid backslash".into()),
                    }
                } else {
                    val.push(c);
                }
            }
            s = s[end..].trim_start();
        }
        let key = if key == "dbname" {
            "database".into()
        } else {
            key
        };
        out.insert(key, val);
    }
    Ok(out)
}

/// pgx's `ParseConfig` settings of a DSN: URL form (`postgres://`, `postgresql://`) or
/// keyword/value, plus the `PG*` environment variables it reads (pgconn/config.go@v5.6.0:438-454).
pub fn parse_pg(
    dsn: &str,
    env: &BTreeMap<String, String>,
) -> Result<BTreeMap<String, String>, String> {
    let mut settings = BTreeMap::new();
    for (var, key) in [
        ("PGHOST", "host"),
        ("PGPORT", "port"),
        ("PGDATABASE", "database"),
        ("PGUSER", "user"),
        ("PGPASSWORD", "password"),
        ("PGPASSFILE", "passfile"),
        ("PGSSLMODE", "sslmode"),
        ("PGSSLKEY", "sslkey"),
        ("PGSSLCERT", "sslcert"),
        ("PGSSLROOTCERT", "sslrootcert"),
        ("PGSSLPASSWORD", "sslpassword"),
    ] {
        if let Some(v) = env.get(var).filter(|v| !v.is_empty()) {
            settings.insert(key.to_string(), v.clone());
        }
    }
    let from_dsn = if dsn.starts_with("postgres://") || dsn.starts_with("postgresql://") {
        let url = url::Url::parse(dsn).map_err(|e| e.to_string())?;
        let mut m = BTreeMap::new();
        if !url.username().is_empty() {
            m.insert("user".into(), percent_decode(url.username())?);
        }
        if let Some(p) = url.password() {
            m.insert("password".into(), percent_decode(p)?);
        }
        if let Some(h) = url.host_str() {
            m.insert("host".into(), h.trim_matches(['[', ']']).to_string());
        }
        if let Some(p) = url.port() {
            m.insert("port".into(), p.to_string());
        }
        let db = url.path().trim_start_matches('/');
        if !db.is_empty() {
            m.insert("database".into(), percent_decode(db)?);
        }
        for (k, v) in url.query_pairs() {
            let k = if k == "dbname" {
                "database".into()
            } else {
                k.to_string()
            };
            m.insert(k, v.to_string());
        }
        m
    } else {
        parse_pg_key_value(dsn)?
    };
    settings.extend(from_dsn);
    Ok(settings)
}

/// Keys of `settings` pgx would send to the server as run-time parameters.
pub fn pg_unknown_keys(settings: &BTreeMap<String, String>, pgx_5_9: bool) -> Vec<String> {
    settings
        .keys()
        .filter(|k| {
            let known = PGX_KEYS_V5_6.contains(&k.as_str())
                || (pgx_5_9 && PGX_KEYS_V5_9_EXTRA.contains(&k.as_str()));
            !known
        })
        .cloned()
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mysql_dsns_split_where_go_sql_driver_splits_them() {
        let d = parse_mysql("u:p@ss:w@tcp(db:3307)/my%20db?charset=utf8mb4").unwrap();
        assert_eq!(
            (d.user.as_str(), d.password.as_deref()),
            ("u", Some("p@ss:w"))
        );
        assert_eq!(
            (d.net.as_str(), d.addr.as_str(), d.db.as_str()),
            ("tcp", "db:3307", "my db")
        );
        assert_eq!(d.params["charset"], "utf8mb4");
        let d = parse_mysql("u@tcp([fd00::1]:3306)/d").unwrap();
        assert_eq!((d.password, d.addr.as_str()), (None, "[fd00::1]:3306"));
        assert_eq!(parse_mysql("u@tcp(db)/d").unwrap().addr, "db:3306");
        assert!(parse_mysql("u@tcp(db:1/d").is_err());
        assert!(parse_mysql("no-slash").is_err());
    }

    #[test]
    fn pg_key_values_unquote_like_pgx() {
        let m = parse_pg_key_value(r"host=db user='o\'neil' dbname='my db' password=a\ b").unwrap();
        assert_eq!(m["user"], "o'neil");
        assert_eq!(m["database"], "my db");
        assert_eq!(m["password"], "a b");
        assert!(parse_pg_key_value("host='db").is_err());
        let env = BTreeMap::from([("PGPASSWORD".to_string(), "s3cret".to_string())]);
        let m = parse_pg(
            "postgresql://u@10.0.0.1:5433/d?sslmode=require&hostaddr=x",
            &env,
        )
        .unwrap();
        assert_eq!(m["password"], "s3cret");
        assert_eq!(m["port"], "5433");
        assert_eq!(pg_unknown_keys(&m, false), ["hostaddr"]);
    }
}
