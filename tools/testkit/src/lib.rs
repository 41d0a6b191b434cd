//! The local stack's helpers, shared by the dev server and the tests: the table is
//! created from template.yaml's own definition, tokens are minted with the local
//! secret, and API Gateway payload 2.0 events are built or loaded from `events/`.

pub mod faults;

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, GlobalSecondaryIndex, KeySchemaElement, KeyType, Projection,
    ProjectionType, ScalarAttributeType, StreamSpecification, StreamViewType,
    TimeToLiveSpecification,
};
use chat_core::config::{Config, LOCAL_DEV_SECRET};
use chat_core::item::Item;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::path::PathBuf;

pub const LOCAL_ISSUER: &str = "chat-local";
pub const LOCAL_AUDIENCE: &str = "chat-api";
pub const TEST_ENDPOINT: &str = "http://127.0.0.1:8001";

/// The repository root (where template.yaml and events/ live).
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

pub fn template() -> Value {
    let text =
        std::fs::read_to_string(repo_root().join("template.yaml")).expect("read template.yaml");
    parse_template(&text)
}

/// Parses a SAM template; CloudFormation's short tags (`!Ref`, `!Sub`…) are kept as
/// their plain values since only literal parts are read here.
pub fn parse_template(text: &str) -> Value {
    let yaml: serde_norway::Value =
        serde_norway::from_str(text).expect("a YAML document (template.yaml or openapi.yaml)");
    fn plain(v: serde_norway::Value) -> Value {
        match v {
            serde_norway::Value::Null => Value::Null,
            serde_norway::Value::Bool(b) => Value::Bool(b),
            serde_norway::Value::Number(n) => {
                serde_json::to_value(n.as_f64()).unwrap_or(Value::Null)
            }
            serde_norway::Value::String(s) => Value::String(s),
            serde_norway::Value::Sequence(seq) => {
                Value::Array(seq.into_iter().map(plain).collect())
            }
            serde_norway::Value::Mapping(map) => Value::Object(
                map.into_iter()
                    .filter_map(|(k, v)| k.as_str().map(|k| (k.to_owned(), plain(v))))
                    .collect(),
            ),
            serde_norway::Value::Tagged(tagged) => plain(tagged.value),
        }
    }
    plain(yaml)
}

/// One HttpApi route of the template: which function serves `METHOD /path`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    pub function: String,
    pub method: String,
    pub path: String,
}

impl Route {
    pub fn key(&self) -> String {
        format!("{} {}", self.method, self.path)
    }

    /// Matches a concrete path, returning its path parameters.
    pub fn matches(&self, method: &str, path: &str) -> Option<HashMap<String, String>> {
        if !self.method.eq_ignore_ascii_case(method) {
            return None;
        }
        let pattern: Vec<&str> = self.path.trim_matches('/').split('/').collect();
        let actual: Vec<&str> = path.trim_matches('/').split('/').collect();
        if pattern.len() != actual.len() {
            return None;
        }
        let mut params = HashMap::new();
        for (p, a) in pattern.iter().zip(&actual) {
            match p.strip_prefix('{').and_then(|p| p.strip_suffix('}')) {
                Some(name) if !a.is_empty() => {
                    params.insert(name.to_owned(), percent_decode(a));
                }
                Some(_) => return None,
                None if p == a => {}
                None => return None,
            }
        }
        Some(params)
    }
}

/// Decodes `%XX` escapes (path segments and query components).
pub fn percent_decode(raw: &str) -> String {
    let bytes = raw.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        // Byte-wise: slicing the str here panicked on a multi-byte character after
        // `%` (found by fuzz/route_path).
        let hex = |b: u8| (b as char).to_digit(16);
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && let (Some(high), Some(low)) = (hex(bytes[i + 1]), hex(bytes[i + 2]))
        {
            out.push((high * 16 + low) as u8);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Every HttpApi route in template.yaml, with the function (logical id) serving it.
pub fn template_routes(template: &Value) -> Vec<Route> {
    let mut routes = Vec::new();
    let Some(resources) = template["Resources"].as_object() else {
        return routes;
    };
    for (name, resource) in resources {
        let Some(events) = resource["Properties"]["Events"].as_object() else {
            continue;
        };
        for event in events.values() {
            if event["Type"] == "HttpApi" {
                let props = &event["Properties"];
                if let (Some(method), Some(path)) =
                    (props["Method"].as_str(), props["Path"].as_str())
                {
                    routes.push(Route {
                        function: name.clone(),
                        method: method.to_uppercase(),
                        path: path.to_owned(),
                    });
                }
            }
        }
    }
    routes
}

/// The WebSocket API's route keys (`$connect`, `subscribe`, …), as template.yaml's
/// `AWS::ApiGatewayV2::Route` resources declare them.
pub fn websocket_routes(template: &Value) -> Vec<String> {
    let Some(resources) = template["Resources"].as_object() else {
        return Vec::new();
    };
    resources
        .values()
        .filter(|r| r["Type"] == "AWS::ApiGatewayV2::Route")
        .filter_map(|r| r["Properties"]["RouteKey"].as_str().map(str::to_owned))
        .collect()
}

/// The filter patterns of `function`'s DynamoDB stream event source, parsed.
pub fn stream_filters(template: &Value, function: &str) -> Vec<Value> {
    let Some(events) = template["Resources"][function]["Properties"]["Events"].as_object() else {
        return Vec::new();
    };
    events
        .values()
        .filter(|e| e["Type"] == "DynamoDB")
        .flat_map(|e| {
            e["Properties"]["FilterCriteria"]["Filters"]
                .as_array()
                .cloned()
                .unwrap_or_default()
        })
        .filter_map(|f| serde_json::from_str(f["Pattern"].as_str()?).ok())
        .collect()
}

/// Whether a record matches an event filter pattern the way Lambda's event source
/// mapping matches it, for the patterns the template uses: every key of the pattern
/// is in the record, an array lists the values allowed (or `{"exists": true}`), an
/// object nests.
pub fn matches_pattern(pattern: &Value, record: &Value) -> bool {
    match pattern {
        Value::Object(fields) => fields.iter().all(|(k, p)| match record.get(k) {
            Some(v) => matches_pattern(p, v),
            None => wants_absent(p),
        }),
        // `{"exists": true}` accepts any value (the key's presence is checked above);
        // `{"exists": false}` none (it matches only where the key is absent).
        Value::Array(allowed) => allowed
            .iter()
            .any(|a| a == record || a.get("exists") == Some(&Value::Bool(true))),
        other => other == record,
    }
}

/// Whether a pattern asks for its key to be absent (`{"exists": false}` at its leaf).
fn wants_absent(pattern: &Value) -> bool {
    match pattern {
        Value::Object(fields) => !fields.is_empty() && fields.values().all(wants_absent),
        Value::Array(allowed) => allowed
            .iter()
            .any(|a| a.get("exists") == Some(&Value::Bool(false))),
        _ => false,
    }
}

/// A DynamoDB client for DynamoDB Local.
pub async fn local_client(endpoint: &str) -> Client {
    let shared = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new("us-east-1"))
        .credentials_provider(aws_sdk_dynamodb::config::Credentials::new(
            "local", "local", None, None, "local",
        ))
        .load()
        .await;
    let config = aws_sdk_dynamodb::config::Builder::from(&shared)
        .endpoint_url(endpoint)
        .build();
    Client::from_conf(config)
}

/// Creates `table` from the `ChatTable` resource of template.yaml (the one schema).
pub async fn create_table(client: &Client, table: &str) -> Result<(), String> {
    let template = template();
    let props = &template["Resources"]["ChatTable"]["Properties"];
    let attributes: Vec<AttributeDefinition> = props["AttributeDefinitions"]
        .as_array()
        .ok_or("ChatTable has no AttributeDefinitions")?
        .iter()
        .map(|a| {
            let attribute_type = match a["AttributeType"].as_str() {
                Some("N") => ScalarAttributeType::N,
                Some("B") => ScalarAttributeType::B,
                _ => ScalarAttributeType::S,
            };
            AttributeDefinition::builder()
                .attribute_name(a["AttributeName"].as_str().unwrap_or_default())
                .attribute_type(attribute_type)
                .build()
                .expect("attribute definition")
        })
        .collect();
    let indexes: Vec<GlobalSecondaryIndex> = props["GlobalSecondaryIndexes"]
        .as_array()
        .into_iter()
        .flatten()
        .map(global_index)
        .collect();
    let mut request = client
        .create_table()
        .table_name(table)
        .billing_mode(BillingMode::PayPerRequest)
        .set_attribute_definitions(Some(attributes))
        .set_key_schema(Some(key_schema(&props["KeySchema"])))
        .set_global_secondary_indexes((!indexes.is_empty()).then_some(indexes));
    if props["StreamSpecification"].is_object() {
        request = request.stream_specification(
            StreamSpecification::builder()
                .stream_enabled(true)
                .stream_view_type(StreamViewType::NewAndOldImages)
                .build()
                .expect("stream specification"),
        );
    }
    request.send().await.map_err(|e| {
        format!(
            "create table {table}: {}",
            aws_sdk_dynamodb::error::DisplayErrorContext(e)
        )
    })?;
    if let Some(ttl) = props["TimeToLiveSpecification"]["AttributeName"].as_str() {
        // TTL is a nicety locally; DynamoDB Local accepts the call.
        let _ = client
            .update_time_to_live()
            .table_name(table)
            .time_to_live_specification(
                TimeToLiveSpecification::builder()
                    .attribute_name(ttl)
                    .enabled(true)
                    .build()
                    .expect("ttl"),
            )
            .send()
            .await;
    }
    Ok(())
}

/// A template KeySchema as the SDK's.
fn key_schema(v: &Value) -> Vec<KeySchemaElement> {
    v.as_array()
        .into_iter()
        .flatten()
        .map(|k| {
            KeySchemaElement::builder()
                .attribute_name(k["AttributeName"].as_str().unwrap_or_default())
                .key_type(if k["KeyType"] == "RANGE" {
                    KeyType::Range
                } else {
                    KeyType::Hash
                })
                .build()
                .expect("key schema element")
        })
        .collect()
}

/// A template GSI as the SDK's, with its projection as declared (a KEYS_ONLY index
/// must answer with keys only here too).
fn global_index(g: &Value) -> GlobalSecondaryIndex {
    let projection = &g["Projection"];
    GlobalSecondaryIndex::builder()
        .index_name(g["IndexName"].as_str().unwrap_or_default())
        .set_key_schema(Some(key_schema(&g["KeySchema"])))
        .projection(
            Projection::builder()
                .projection_type(match projection["ProjectionType"].as_str() {
                    Some("KEYS_ONLY") => ProjectionType::KeysOnly,
                    Some("INCLUDE") => ProjectionType::Include,
                    _ => ProjectionType::All,
                })
                .set_non_key_attributes(projection["NonKeyAttributes"].as_array().map(|a| {
                    a.iter()
                        .filter_map(|v| v.as_str().map(str::to_owned))
                        .collect()
                }))
                .build(),
        )
        .build()
        .expect("global secondary index")
}

pub async fn table_exists(client: &Client, table: &str) -> bool {
    client
        .describe_table()
        .table_name(table)
        .send()
        .await
        .is_ok()
}

/// Every item of a table, for tests that check what was (not) written. Tests only:
/// nothing on a request path ever scans.
pub async fn dump_table(client: &Client, table: &str) -> Vec<Item> {
    let mut items = Vec::new();
    let mut start = None;
    loop {
        let out = client
            .scan()
            .table_name(table)
            .consistent_read(true)
            .set_exclusive_start_key(start)
            .send()
            .await
            .expect("scan test table");
        items.extend(out.items.unwrap_or_default());
        start = out.last_evaluated_key;
        if start.is_none() {
            break;
        }
    }
    items.sort_by(|a, b| {
        format!("{:?}{:?}", a.get("PK"), a.get("SK")).cmp(&format!(
            "{:?}{:?}",
            b.get("PK"),
            b.get("SK")
        ))
    });
    items
}

/// Claims of a local token; change fields to craft bad tokens in tests.
#[derive(Debug, Clone)]
pub struct TokenSpec {
    pub sub: String,
    pub org: String,
    pub role: String,
    pub issuer: String,
    pub audience: String,
    pub expires_in_secs: i64,
    pub extra: serde_json::Map<String, Value>,
}

impl TokenSpec {
    pub fn new(sub: &str, org: &str, role: &str) -> Self {
        TokenSpec {
            sub: sub.into(),
            org: org.into(),
            role: role.into(),
            issuer: LOCAL_ISSUER.into(),
            audience: LOCAL_AUDIENCE.into(),
            expires_in_secs: 3600,
            extra: Default::default(),
        }
    }

    pub fn claims(&self) -> Value {
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        let mut claims = json!({
            "sub": self.sub, "org": self.org, "role": self.role,
            "iss": self.issuer, "aud": self.audience,
            "iat": now, "exp": now + self.expires_in_secs,
        });
        for (k, v) in &self.extra {
            claims[k] = v.clone();
        }
        claims
    }

    /// HS256 with the local development secret.
    pub fn mint(&self) -> String {
        mint_with(&self.claims(), LOCAL_DEV_SECRET.as_bytes())
    }
}

impl TokenSpec {
    /// RS256 or ES256 with the test key pair in `fixtures/` (kid `test-rs256` / `test-es256`).
    pub fn mint_asymmetric(&self, algorithm: jsonwebtoken::Algorithm) -> String {
        let (kid, key) = match algorithm {
            jsonwebtoken::Algorithm::RS256 => (
                "test-rs256",
                jsonwebtoken::EncodingKey::from_rsa_pem(fixture("rs256-private.pem").as_bytes())
                    .expect("rsa key"),
            ),
            jsonwebtoken::Algorithm::ES256 => (
                "test-es256",
                jsonwebtoken::EncodingKey::from_ec_pem(fixture("es256-private.pem").as_bytes())
                    .expect("ec key"),
            ),
            other => panic!("no test key for {other:?}"),
        };
        let mut header = jsonwebtoken::Header::new(algorithm);
        header.kid = Some(kid.to_owned());
        jsonwebtoken::encode(&header, &self.claims(), &key).expect("encode token")
    }
}

/// A file of `tools/testkit/fixtures/` (test-only keys and their JWKS).
pub fn fixture(name: &str) -> String {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures")
        .join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

/// A deployed-style configuration: RS256/ES256 keys from the test JWKS, issuer and
/// audience checked, no local secret.
pub fn jwks_config(endpoint: &str, table: &str, algorithm: &str) -> Config {
    let jwks = fixture("jwks.json");
    let env: HashMap<String, String> = [
        ("TABLE_NAME", table),
        ("DYNAMODB_ENDPOINT", endpoint),
        ("JWT_ALGORITHM", algorithm),
        ("JWT_JWKS", jwks.as_str()),
        ("JWT_ISSUER", LOCAL_ISSUER),
        ("JWT_AUDIENCE", LOCAL_AUDIENCE),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    Config::from_map(&env).expect("jwks config is complete")
}

pub fn mint_with(claims: &Value, secret: &[u8]) -> String {
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        claims,
        &jsonwebtoken::EncodingKey::from_secret(secret),
    )
    .expect("encode token")
}

pub fn token(sub: &str, org: &str, role: &str) -> String {
    TokenSpec::new(sub, org, role).mint()
}

/// The local stack's configuration for `table` at `endpoint`.
/// A value of scripts/local.env (the one place for the local stack's values).
pub fn local_env_value(name: &str) -> Option<String> {
    let text = std::fs::read_to_string(repo_root().join("scripts/local.env")).ok()?;
    text.lines()
        .filter_map(|l| l.split_once('='))
        .find(|(k, _)| k.trim() == name)
        .map(|(_, v)| v.trim().to_owned())
}

/// The local stack's VAPID key pair and subject (Web Push) and its email settings
/// (the tests that read mails point SES_ENDPOINT at their own stand-in), from
/// scripts/local.env.
fn local_notify_env() -> Vec<(&'static str, String)> {
    [
        "VAPID_PRIVATE_KEY",
        "VAPID_PUBLIC_KEY",
        "VAPID_SUBJECT",
        "EMAIL_FROM",
        "EMAIL_LINK_BASE",
        "EMAIL_LINK_SECRET",
        "SES_ENDPOINT",
        "SNS_APNS_APPLICATION_ARN",
        "SNS_FCM_APPLICATION_ARN",
        "SNS_ENDPOINT",
        "INBOUND_EMAIL_DOMAIN",
    ]
    .into_iter()
    .filter_map(|k| Some((k, local_env_value(k)?)))
    .collect()
}

pub fn local_config(endpoint: &str, table: &str) -> Config {
    let mut env: HashMap<String, String> = [
        ("TABLE_NAME", table),
        ("DYNAMODB_ENDPOINT", endpoint),
        // Uploads go to the tests' S3 server, in a bucket named as the table.
        ("UPLOADS_BUCKET", table),
        ("S3_ENDPOINT", local_s3().0.as_str()),
        ("CHAT_LOCAL", "1"),
        ("JWT_ALGORITHM", "HS256"),
        ("JWT_SECRET", LOCAL_DEV_SECRET),
        ("JWT_ISSUER", LOCAL_ISSUER),
        ("JWT_AUDIENCE", LOCAL_AUDIENCE),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    env.extend(
        local_notify_env()
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v)),
    );
    Config::from_map(&env).expect("local config is complete")
}

/// The DynamoDB Local endpoint the tests use (started by `make test`).
pub fn test_endpoint() -> String {
    std::env::var("DYNAMODB_ENDPOINT").unwrap_or_else(|_| TEST_ENDPOINT.to_owned())
}

/// A room's first change as the feed records it (a customer's message, now): for
/// seeding what the stream would have made of it.
pub fn first_change(room: chat_core::ids::RoomId) -> chat_core::store::Event {
    chat_core::store::Event {
        room_id: room,
        seq: 1,
        kind: chat_core::store::EventKind::MessageNew,
        at: chat_core::time::now_string(),
        actor_id: "u-100".into(),
        staff_only: false,
        to_tenant: true,
        data: "{}".into(),
        expires_at: chat_core::time::now().unix_timestamp() + 3600,
    }
}

/// The test app of a function crate's integration tests: a fresh table and the
/// function's app on it (built from the table's runtime as `main.rs` builds it from
/// the environment), and what else the tests keep beside it (other functions' apps on
/// the same table, say); `send` calls the app with an API Gateway event. Each test
/// file adds the calls it makes as an extension trait.
pub struct FunctionTest<A, X = ()> {
    pub table: TestTable,
    pub app: A,
    pub extra: X,
}

impl<A: chat_core::app::HttpApp> FunctionTest<A> {
    pub async fn new(build: impl FnOnce(chat_core::Runtime) -> A) -> Self {
        Self::with(build, |_| ()).await
    }
}

impl<A: chat_core::app::HttpApp, X> FunctionTest<A, X> {
    /// With `extra` built from the same table's runtime.
    pub async fn with(
        build: impl FnOnce(chat_core::Runtime) -> A,
        extra: impl FnOnce(chat_core::Runtime) -> X,
    ) -> Self {
        let table = TestTable::new().await;
        FunctionTest {
            app: build(table.runtime.clone()),
            extra: extra(table.runtime.clone()),
            table,
        }
    }

    /// The function's answer to `event`: status and JSON body.
    pub async fn send(&self, event: HttpEvent) -> (u16, Value) {
        response_json(&self.app.handle(event.request()).await)
    }
}

/// A fresh table per test, and the runtime (config + store) of a function using it.
pub struct TestTable {
    pub name: String,
    pub client: Client,
    pub runtime: chat_core::Runtime,
    /// The DynamoDB Local it is in.
    pub endpoint: String,
}

/// A DynamoDB Local of a test's own on a free port of 127.0.0.1 (in memory, or on
/// `data_dir`), stopped on drop: for tests that stop it, or that load it more than
/// the shared one should carry for the tests after them.
pub struct OwnDynamo {
    pub port: u16,
}

impl OwnDynamo {
    pub fn start(data_dir: Option<&std::path::Path>) -> OwnDynamo {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        Self::start_on(port, data_dir)
    }

    /// On `port` (again, after [`Self::stop`]).
    pub fn start_on(port: u16, data_dir: Option<&std::path::Path>) -> OwnDynamo {
        let mut command = std::process::Command::new("bash");
        command
            .arg(repo_root().join("scripts/dynamodb-local.sh"))
            .args(["start", "--port", &port.to_string()]);
        match data_dir {
            Some(dir) => command.arg("--data-dir").arg(dir),
            None => command.arg("--in-memory"),
        };
        let status = command.status().expect("run scripts/dynamodb-local.sh");
        assert!(status.success(), "DynamoDB Local starts on {port}");
        OwnDynamo { port }
    }

    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn stop(&self) {
        let _ = std::process::Command::new("bash")
            .arg(repo_root().join("scripts/dynamodb-local.sh"))
            .args(["stop", "--port", &self.port.to_string()])
            .status();
    }
}

impl Drop for OwnDynamo {
    fn drop(&mut self) {
        self.stop();
        let log = format!(".local/dynamodb-{}.log", self.port);
        let _ = std::fs::remove_file(repo_root().join(log));
    }
}

impl TestTable {
    pub async fn new() -> TestTable {
        Self::with_config(|endpoint, table| local_config(endpoint, table)).await
    }

    /// A fresh table in the DynamoDB Local at `endpoint` (e.g. an [`OwnDynamo`]).
    pub async fn at(endpoint: &str) -> TestTable {
        Self::in_dynamo(endpoint.to_owned(), |endpoint, table| {
            local_config(endpoint, table)
        })
        .await
    }

    /// A fresh table whose runtime uses the configuration `config` builds.
    pub async fn with_config(config: impl FnOnce(&str, &str) -> Config) -> TestTable {
        Self::in_dynamo(test_endpoint(), config).await
    }

    async fn in_dynamo(endpoint: String, config: impl FnOnce(&str, &str) -> Config) -> TestTable {
        let name = format!(
            "test-{}",
            chat_core::ids::Ulid::generate().as_str().to_lowercase()
        );
        let client = local_client(&endpoint).await;
        create_table(&client, &name).await.unwrap_or_else(|e| {
            panic!("{e}\n(is DynamoDB Local running at {endpoint}? `make test` starts it)")
        });
        let config = config(&endpoint, &name);
        if let Some(uploads) = &config.uploads {
            make_bucket(&local_s3().1, &uploads.bucket).expect("make the table's bucket");
        }
        let runtime = chat_core::Runtime::from_config(config).await;
        TestTable {
            name,
            client,
            runtime,
            endpoint,
        }
    }

    /// A fresh table whose runtime's writes fail with the fault armed on the
    /// returned switch (see [`faults`]); reads and unarmed writes reach the table.
    pub async fn with_faults() -> (TestTable, faults::Faults) {
        let table = TestTable::new().await;
        let faults = faults::Faults::default();
        let config = table.runtime.config.clone();
        let shared = chat_core::aws::sdk_config(&config.aws, chat_core::aws::Endpoint::Local).await;
        let inner = shared
            .http_client()
            .expect("the SDK config has an HTTP client");
        let counter = chat_core::dynamo::RequestCounter::default();
        let client_config = aws_sdk_dynamodb::config::Builder::from(&shared)
            .http_client(faults.client(inner))
            .interceptor(counter.clone())
            .endpoint_url(test_endpoint())
            .build();
        let store = chat_core::store::Store::new(
            Client::from_conf(client_config),
            table.name.clone(),
            counter,
        );
        let runtime = chat_core::Runtime { config, store };
        let mut table = table;
        table.runtime = runtime;
        (table, faults)
    }

    pub async fn items(&self) -> Vec<Item> {
        dump_table(&self.client, &self.name).await
    }
}

/// A test's table goes with it: DynamoDB Local slows down as tables pile up in one
/// process (a full `make test` creates about two hundred), and a slow DynamoDB fails
/// the load test's timeouts. Deleted from a thread of its own, since a test's runtime
/// may be ending.
impl Drop for TestTable {
    fn drop(&mut self) {
        let name = std::mem::take(&mut self.name);
        let endpoint = std::mem::take(&mut self.endpoint);
        let _ = std::thread::spawn(move || {
            let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            runtime.block_on(async {
                let client = local_client(&endpoint).await;
                let _ = client.delete_table().table_name(&name).send().await;
            });
        })
        .join();
    }
}

/// Builds an API Gateway HTTP API (payload 2.0) event, as API Gateway sends it.
#[derive(Debug, Clone)]
pub struct HttpEvent {
    pub route_key: String,
    pub path: String,
    pub path_parameters: HashMap<String, String>,
    pub query: Vec<(String, String)>,
    pub headers: Vec<(String, String)>,
    pub body: Option<String>,
}

impl HttpEvent {
    pub fn new(route_key: &str, path: &str) -> Self {
        HttpEvent {
            route_key: route_key.into(),
            path: path.into(),
            path_parameters: HashMap::new(),
            query: Vec::new(),
            headers: Vec::new(),
            body: None,
        }
    }

    pub fn param(mut self, name: &str, value: &str) -> Self {
        self.path_parameters.insert(name.into(), value.into());
        self
    }

    pub fn query(mut self, name: &str, value: &str) -> Self {
        self.query.push((name.into(), value.into()));
        self
    }

    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.to_lowercase(), value.into()));
        self
    }

    pub fn bearer(self, token: &str) -> Self {
        self.header("authorization", &format!("Bearer {token}"))
    }

    pub fn json(self, body: &Value) -> Self {
        self.raw_body(&body.to_string())
            .header("content-type", "application/json")
    }

    pub fn raw_body(mut self, body: &str) -> Self {
        self.body = Some(body.into());
        self
    }

    pub fn to_json(&self) -> Value {
        let method = self.route_key.split(' ').next().unwrap_or("GET");
        let raw_query: Vec<String> = self
            .query
            .iter()
            // Keys too: lambda_http panics on a raw query that is not a valid URI
            // (a decoded `"` in a key, found by schemathesis through the dev server).
            .map(|(k, v)| format!("{}={}", encode_query(k), encode_query(v)))
            .collect();
        let mut query_params = serde_json::Map::new();
        for (k, v) in &self.query {
            // Payload 2.0 joins repeated parameters with commas.
            let joined = match query_params.get(k).and_then(Value::as_str) {
                Some(existing) => format!("{existing},{v}"),
                None => v.clone(),
            };
            query_params.insert(k.clone(), Value::String(joined));
        }
        let mut headers = serde_json::Map::new();
        for (k, v) in &self.headers {
            headers.insert(k.clone(), Value::String(v.clone()));
        }
        let now = time::OffsetDateTime::now_utc();
        let mut event = json!({
            "version": "2.0",
            "routeKey": self.route_key,
            "rawPath": self.path,
            "rawQueryString": raw_query.join("&"),
            "headers": headers,
            "requestContext": {
                "accountId": "123456789012",
                "apiId": "local",
                "domainName": "localhost",
                "domainPrefix": "localhost",
                "http": { "method": method, "path": self.path, "protocol": "HTTP/1.1", "sourceIp": "127.0.0.1", "userAgent": "testkit" },
                "requestId": chat_core::ids::Ulid::generate().as_str(),
                "routeKey": self.route_key,
                "stage": "$default",
                "time": now.unix_timestamp().to_string(),
                "timeEpoch": now.unix_timestamp() * 1000,
            },
            "isBase64Encoded": false,
        });
        if !query_params.is_empty() {
            event["queryStringParameters"] = Value::Object(query_params);
        }
        if !self.path_parameters.is_empty() {
            event["pathParameters"] = json!(self.path_parameters);
        }
        if let Some(body) = &self.body {
            event["body"] = Value::String(body.clone());
        }
        event
    }

    /// The request exactly as lambda_http would hand it to a handler.
    pub fn request(&self) -> lambda_http::Request {
        to_request(&self.to_json())
    }
}

fn encode_query(v: &str) -> String {
    v.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Deserializes an event the way the Lambda runtime does.
pub fn to_request(event: &Value) -> lambda_http::Request {
    lambda_http::request::from_str(&event.to_string()).expect("a valid API Gateway event")
}

/// An event file from `events/`.
pub fn load_event(name: &str) -> Value {
    let path = repo_root().join("events").join(name);
    let text =
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Status and JSON body of a handler's response.
pub fn response_json(response: &lambda_http::Response<lambda_http::Body>) -> (u16, Value) {
    let body = match response.body() {
        lambda_http::Body::Text(t) => serde_json::from_str(t).unwrap_or(Value::Null),
        lambda_http::Body::Binary(b) => serde_json::from_slice(b).unwrap_or(Value::Null),
        _ => Value::Null,
    };
    (response.status().as_u16(), body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn any_query_becomes_a_request() {
        let event = HttpEvent::new("GET /rooms", "/rooms")
            .query("\"", "null")
            .query("\u{f4} {x}", "a b\"");
        let req = event.request();
        assert_eq!(
            req.uri().query(),
            Some("%22=null&%C3%B4%20%7Bx%7D=a%20b%22")
        );
    }

    #[test]
    fn percent_decoding_never_splits_a_character() {
        // fuzz/route_path regression: `%` then a multi-byte character.
        assert_eq!(percent_decode("%a\u{68d}/x"), "%a\u{68d}/x");
        assert_eq!(percent_decode("%%\u{68d}"), "%%\u{68d}");
        assert_eq!(percent_decode("a%20b%2Fc%+1"), "a b/c%+1");
        let route = Route {
            function: "F".into(),
            method: "GET".into(),
            path: "/rooms/{room_id}".into(),
        };
        assert!(route.matches("GET", "/rooms/%%%%\u{68d}").is_some());
    }

    #[test]
    fn routes_match_and_extract_parameters() {
        let route = Route {
            function: "F".into(),
            method: "GET".into(),
            path: "/rooms/{room_id}/messages".into(),
        };
        let params = route.matches("get", "/rooms/01ABC/messages").unwrap();
        assert_eq!(params["room_id"], "01ABC");
        assert!(route.matches("GET", "/rooms/01ABC").is_none());
        assert!(route.matches("POST", "/rooms/01ABC/messages").is_none());
        assert!(route.matches("GET", "/rooms//messages").is_none());
    }

    #[test]
    fn events_become_requests_with_route_and_parameters() {
        let event = HttpEvent::new("GET /rooms/{room_id}/messages", "/rooms/r1/messages")
            .param("room_id", "r1")
            .query("limit", "5")
            .bearer("t");
        let req = event.request();
        assert_eq!(
            chat_core::app::route_key(&req),
            Some("GET /rooms/{room_id}/messages")
        );
        assert_eq!(chat_core::app::path_param(&req, "room_id"), Some("r1"));
        assert_eq!(req.headers()["authorization"], "Bearer t");
    }

    #[test]
    fn short_tags_parse_to_their_values() {
        let t = parse_template("A: !Ref B\nC: !GetAtt [D, Arn]\n");
        assert_eq!(t["A"], "B");
        assert_eq!(t["C"][0], "D");
    }
}

/// A request a [`HttpDouble`] received.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub method: String,
    pub path: String,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

/// A local HTTP/1.1 double of a provider's protocol on 127.0.0.1: each request is
/// answered by `respond(request) -> (status, body, delay)`, and recorded.
pub struct HttpDouble {
    pub port: u16,
    pub requests: std::sync::Arc<std::sync::Mutex<Vec<Recorded>>>,
}

impl HttpDouble {
    pub async fn start<F>(respond: F) -> HttpDouble
    where
        F: Fn(&Recorded) -> (u16, String, std::time::Duration) + Send + Sync + 'static,
    {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0))
            .await
            .expect("bind double");
        let port = listener.local_addr().expect("addr").port();
        let requests = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let (log, respond) = (requests.clone(), std::sync::Arc::new(respond));
        tokio::spawn(async move {
            loop {
                let Ok((mut stream, _)) = listener.accept().await else {
                    return;
                };
                let (log, respond) = (log.clone(), respond.clone());
                tokio::spawn(async move {
                    let mut buf = Vec::new();
                    let mut chunk = [0u8; 8192];
                    let (head_end, length) = loop {
                        let Ok(n) = stream.read(&mut chunk).await else {
                            return;
                        };
                        if n == 0 {
                            return;
                        }
                        buf.extend_from_slice(&chunk[..n]);
                        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                            let head = String::from_utf8_lossy(&buf[..end]).to_lowercase();
                            let length = head
                                .lines()
                                .find_map(|l| {
                                    l.strip_prefix("content-length:")
                                        .map(|v| v.trim().parse::<usize>().unwrap_or(0))
                                })
                                .unwrap_or(0);
                            break (end + 4, length);
                        }
                    };
                    while buf.len() < head_end + length {
                        let Ok(n) = stream.read(&mut chunk).await else {
                            return;
                        };
                        if n == 0 {
                            break;
                        }
                        buf.extend_from_slice(&chunk[..n]);
                    }
                    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
                    let mut lines = head.lines();
                    let mut first = lines.next().unwrap_or_default().split(' ');
                    let recorded = Recorded {
                        method: first.next().unwrap_or_default().to_owned(),
                        path: first.next().unwrap_or_default().to_owned(),
                        headers: lines
                            .filter_map(|l| {
                                l.split_once(':')
                                    .map(|(k, v)| (k.trim().to_lowercase(), v.trim().to_owned()))
                            })
                            .collect(),
                        body: String::from_utf8_lossy(&buf[head_end..]).into_owned(),
                    };
                    let (status, body, delay) = respond(&recorded);
                    log.lock().expect("log").push(recorded);
                    tokio::time::sleep(delay).await;
                    let response = format!(
                        "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                        body.len()
                    );
                    let _ = stream.write_all(response.as_bytes()).await;
                    let _ = stream.shutdown().await;
                });
            }
        });
        HttpDouble { port, requests }
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn recorded(&self) -> Vec<Recorded> {
        self.requests.lock().expect("log").clone()
    }
}

/// A function's `bootstrap` under the AWS Lambda Runtime Interface Emulator (from
/// the `aws-sam-cli` package in `.venv`), answering invocations on 127.0.0.1.
pub struct Rie {
    pub port: u16,
    child: std::process::Child,
    /// When the emulator was started (cold-start measurements start here).
    pub started: std::time::Instant,
}

impl Rie {
    /// The emulator binary installed by `make tools`.
    pub fn binary() -> PathBuf {
        let venv_lib = repo_root().join(".venv/lib");
        std::fs::read_dir(&venv_lib)
            .ok()
            .into_iter()
            .flatten()
            .filter_map(Result::ok)
            .map(|python| {
                python
                    .path()
                    .join("site-packages/samcli/local/rapid/aws-lambda-rie-x86_64")
            })
            .find(|p| p.exists())
            .unwrap_or_else(|| {
                panic!(
                    "no aws-lambda-rie under {} (run `make tools`)",
                    venv_lib.display()
                )
            })
    }

    /// Starts `bootstrap` with `env` (plus the Lambda variables the runtime needs).
    pub fn start(bootstrap: &std::path::Path, function_name: &str, env: &[(&str, String)]) -> Rie {
        let free_port = || {
            std::net::TcpListener::bind("127.0.0.1:0")
                .expect("free port")
                .local_addr()
                .expect("addr")
                .port()
        };
        let (port, runtime_api) = (free_port(), free_port());
        let mut command = std::process::Command::new(Self::binary());
        // Both the invoke address and the emulator's Runtime API (default :9001) get
        // their own port, so several functions run side by side.
        command
            .arg("--runtime-interface-emulator-address")
            .arg(format!("127.0.0.1:{port}"))
            .arg("--runtime-api-address")
            .arg(format!("127.0.0.1:{runtime_api}"))
            .arg(bootstrap)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("AWS_LAMBDA_FUNCTION_NAME", function_name)
            .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128")
            .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
            // INFO keeps the emulator's INIT REPORT (init duration) in the log.
            .env("LOG_LEVEL", "info");
        // The emulator's and the function's output go to a log beside DynamoDB Local's.
        let log_dir = repo_root().join(".local");
        let _ = std::fs::create_dir_all(&log_dir);
        match std::fs::File::create(log_dir.join(format!("rie-{function_name}.log"))) {
            Ok(log) => {
                let err = log
                    .try_clone()
                    .map(std::process::Stdio::from)
                    .unwrap_or_else(|_| std::process::Stdio::null());
                command.stdout(log).stderr(err);
            }
            Err(_) => {
                command
                    .stdout(std::process::Stdio::null())
                    .stderr(std::process::Stdio::null());
            }
        }
        for (k, v) in env {
            command.env(k, v);
        }
        let started = std::time::Instant::now();
        let child = command
            .spawn()
            .expect("start the runtime interface emulator");
        Rie {
            port,
            child,
            started,
        }
    }

    /// Invokes the function with `event`, waiting for the emulator to come up.
    pub async fn invoke(&self, event: &Value) -> Value {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        loop {
            match self.try_invoke(event).await {
                Ok(v) => return v,
                Err(e) if std::time::Instant::now() > deadline => panic!("invoking under RIE: {e}"),
                Err(_) => tokio::time::sleep(std::time::Duration::from_millis(50)).await,
            }
        }
    }

    async fn try_invoke(&self, event: &Value) -> Result<Value, String> {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", self.port))
            .await
            .map_err(|e| e.to_string())?;
        let body = event.to_string();
        let request = format!(
            "POST /2015-03-31/functions/function/invocations HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        stream
            .write_all(request.as_bytes())
            .await
            .map_err(|e| e.to_string())?;
        let mut response = Vec::new();
        stream
            .read_to_end(&mut response)
            .await
            .map_err(|e| e.to_string())?;
        let text = String::from_utf8_lossy(&response);
        let (head, body) = text.split_once("\r\n\r\n").ok_or("no HTTP response")?;
        // The emulator may answer with chunked encoding.
        let body = if head
            .to_ascii_lowercase()
            .contains("transfer-encoding: chunked")
        {
            dechunk_text(body)
        } else {
            body.to_owned()
        };
        serde_json::from_str(&body).map_err(|e| format!("{e}: {body}"))
    }

    /// Resident memory high-water mark of the bootstrap process (VmHWM), in KiB.
    pub fn bootstrap_peak_rss_kib(&self, bootstrap_name: &str) -> Option<u64> {
        // The emulator is a Go program: any of its threads may have forked the
        // bootstrap, and /proc lists children per thread.
        let tasks = std::fs::read_dir(format!("/proc/{}/task", self.child.id())).ok()?;
        let children: Vec<String> = tasks
            .filter_map(Result::ok)
            .filter_map(|t| std::fs::read_to_string(t.path().join("children")).ok())
            .flat_map(|c| c.split_whitespace().map(str::to_owned).collect::<Vec<_>>())
            .collect();
        children.iter().find_map(|pid| {
            let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
            if !status
                .lines()
                .any(|l| l.starts_with("Name:") && bootstrap_name.starts_with(l[5..].trim()))
            {
                return None;
            }
            status
                .lines()
                .find(|l| l.starts_with("VmHWM:"))?
                .split_whitespace()
                .nth(1)?
                .parse()
                .ok()
        })
    }
}

/// [`dechunk_bytes`] of text.
fn dechunk_text(body: &str) -> String {
    String::from_utf8_lossy(&dechunk_bytes(body.as_bytes())).into_owned()
}

/// A chunked body's bytes (what is malformed ends it).
fn dechunk_bytes(body: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut rest = body;
    while let Some(line_end) = rest.windows(2).position(|w| w == b"\r\n") {
        let Some(size) = std::str::from_utf8(&rest[..line_end])
            .ok()
            .and_then(|s| usize::from_str_radix(s.trim(), 16).ok())
        else {
            break;
        };
        let after = &rest[line_end + 2..];
        if size == 0 || after.len() < size {
            break;
        }
        out.extend_from_slice(&after[..size]);
        rest = after[size..]
            .strip_prefix(b"\r\n")
            .unwrap_or(&after[size..]);
    }
    out
}

impl Drop for Rie {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The configuration of a local function process: the same values `make dev` uses.
pub fn local_env(endpoint: &str, table: &str) -> Vec<(&'static str, String)> {
    let mut env = vec![
        ("TABLE_NAME", table.to_owned()),
        ("DYNAMODB_ENDPOINT", endpoint.to_owned()),
        ("UPLOADS_BUCKET", table.to_owned()),
        ("S3_ENDPOINT", local_s3().0.clone()),
        ("CHAT_LOCAL", "1".to_owned()),
        ("JWT_ALGORITHM", "HS256".to_owned()),
        ("JWT_SECRET", LOCAL_DEV_SECRET.to_owned()),
        ("JWT_ISSUER", LOCAL_ISSUER.to_owned()),
        ("JWT_AUDIENCE", LOCAL_AUDIENCE.to_owned()),
        ("AWS_REGION", "us-east-1".to_owned()),
        ("AWS_ACCESS_KEY_ID", "local".to_owned()),
        ("AWS_SECRET_ACCESS_KEY", "local".to_owned()),
        ("RUST_LOG", "error".to_owned()),
    ];
    env.extend(local_notify_env());
    env
}

/// A stored room as the store would read it back: the one owner as its only member,
/// created 2024-06-29 10:00 UTC. For tests that hand the room to a mocked client.
pub fn room_fixture(
    id: &str,
    room_type: chat_core::model::RoomType,
    title: &str,
) -> chat_core::model::Room {
    chat_core::model::Room::open(
        chat_core::ids::RoomId::parse(id).expect("a room id"),
        room_type,
        title.into(),
        "u-100".into(),
        vec!["u-100".into()],
        "2024-06-29T10:00:00.000Z".into(),
    )
}

/// The local S3 server's credentials: the same fixed pair the local stack's SDK
/// clients sign with (`chat_core::aws::sdk_config` for `Endpoint::Local`).
pub const LOCAL_S3_ACCESS_KEY: &str = "local";
pub const LOCAL_S3_SECRET_KEY: &str = "local";

/// Serves S3 on 127.0.0.1:`port` (0: any free port) from `root` until the process
/// ends: `s3s-fs` (crates.io), which verifies SigV4 signatures, presigned URLs' expiry
/// and POST policies (signature, expiration, conditions, content-length-range). Its
/// buckets are `root`'s directories. Runs on a thread of its own, so it outlives the
/// test runtime that started it. Answers the port.
pub fn serve_s3(root: &std::path::Path, port: u16) -> std::io::Result<u16> {
    std::fs::create_dir_all(root)?;
    let listener = std::net::TcpListener::bind(("127.0.0.1", port))?;
    listener.set_nonblocking(true)?;
    let port = listener.local_addr()?.port();
    let fs = s3s_fs::FileSystem::new(root).map_err(|e| std::io::Error::other(format!("{e:?}")))?;
    let s3 = {
        let mut builder = s3s::service::S3ServiceBuilder::new(fs);
        builder.set_auth(s3s::auth::SimpleAuth::from_single(
            LOCAL_S3_ACCESS_KEY,
            LOCAL_S3_SECRET_KEY,
        ));
        builder.build()
    };
    // The bucket's CORS rule of template.yaml (UploadsBucket, default origins `*`):
    // browsers POST the presigned form and GET the files from another origin.
    let service = hyper::service::service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
        let s3 = s3.clone();
        async move {
            let preflight = req.method() == hyper::Method::OPTIONS;
            let mut response = if preflight {
                hyper::Response::new(s3s::Body::empty())
            } else {
                hyper::service::Service::call(&s3, req).await?
            };
            let headers = response.headers_mut();
            let allow = |v: &'static str| hyper::header::HeaderValue::from_static(v);
            headers.insert("access-control-allow-origin", allow("*"));
            if preflight {
                headers.insert("access-control-allow-methods", allow("POST, GET, HEAD"));
                headers.insert("access-control-allow-headers", allow("*"));
                headers.insert("access-control-max-age", allow("3600"));
            }
            Ok::<_, s3s::HttpError>(response)
        }
    });
    std::thread::Builder::new()
        .name(format!("s3-{port}"))
        .spawn(move || {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .expect("the S3 server's runtime");
            runtime.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).expect("listener");
                loop {
                    let Ok((socket, _)) = listener.accept().await else {
                        continue;
                    };
                    let service = service.clone();
                    tokio::spawn(async move {
                        let _ = hyper::server::conn::http1::Builder::new()
                            .serve_connection(hyper_util::rt::TokioIo::new(socket), service)
                            .await;
                    });
                }
            });
        })?;
    Ok(port)
}

/// The tests' S3 server (one per test process, on a free port, in a fresh temporary
/// directory): its endpoint and its root, where each test table's bucket is made.
pub fn local_s3() -> &'static (String, std::path::PathBuf) {
    static S3: std::sync::OnceLock<(String, std::path::PathBuf)> = std::sync::OnceLock::new();
    S3.get_or_init(|| {
        let root = std::env::temp_dir().join(format!(
            "chat-s3-{}-{}",
            std::process::id(),
            chat_core::ids::Ulid::generate().as_str().to_lowercase()
        ));
        let port = serve_s3(&root, 0).expect("start the local S3 server");
        (format!("http://127.0.0.1:{port}"), root)
    })
}

/// Makes `bucket` on the local S3 server rooted at `root` (a bucket is a directory).
pub fn make_bucket(root: &std::path::Path, bucket: &str) -> std::io::Result<()> {
    std::fs::create_dir_all(root.join(bucket))
}

/// POSTs a browser-style multipart form to `url` (its `fields` in order, then the
/// file as the `file` part), as a client does with a presigned POST: the status.
pub async fn post_form(
    url: &str,
    fields: &serde_json::Map<String, Value>,
    file: &[u8],
    file_type: &str,
) -> u16 {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let boundary = "----chat-upload-boundary-7MA4YWxkTrZu0gW";
    let mut body = Vec::new();
    for (name, value) in fields {
        body.extend_from_slice(
            format!(
                "--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{}\r\n",
                value.as_str().unwrap_or_default()
            )
            .as_bytes(),
        );
    }
    body.extend_from_slice(
        format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"file\"\r\nContent-Type: {file_type}\r\n\r\n"
        )
        .as_bytes(),
    );
    body.extend_from_slice(file);
    body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    let rest = url.strip_prefix("http://").expect("a local http URL");
    let (host, path) = rest.split_once('/').unwrap_or((rest, ""));
    let mut stream = tokio::net::TcpStream::connect(host).await.expect("connect");
    let head = format!(
        "POST /{path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: multipart/form-data; boundary={boundary}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).await.expect("write");
    stream.write_all(&body).await.expect("write");
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).await.expect("read");
    String::from_utf8_lossy(&answer)
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

/// One JSON request to a local stand-in on 127.0.0.1:`port` (HTTP/1.1, the
/// connection closed after): status and body.
async fn loopback_json(
    port: u16,
    method: &str,
    path: &str,
    body: &str,
) -> Option<(u16, serde_json::Value)> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .ok()?;
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).await.ok()?;
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).await.ok()?;
    let text = String::from_utf8_lossy(&answer);
    let status = text.split(' ').nth(1)?.parse().ok()?;
    let (head, rest) = text.split_once("\r\n\r\n")?;
    let rest = match head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        true => dechunk_text(rest),
        false => rest.to_owned(),
    };
    Some((
        status,
        serde_json::from_str(&rest).unwrap_or(serde_json::Value::Null),
    ))
}

/// A stand-in of a service (a package from a registry, installed by `make tools`),
/// running as a child process on 127.0.0.1; stopped when dropped.
struct Standin {
    child: std::process::Child,
}

impl Standin {
    /// Runs `command` (whose program or script `installed` is) and waits until
    /// `method path` on `port` answers 200 (an empty method: until it greets SMTP).
    async fn start(
        what: &str,
        installed: std::path::PathBuf,
        mut command: std::process::Command,
        port: u16,
        (method, path): (&str, &str),
    ) -> Standin {
        assert!(
            installed.exists(),
            "no {} (run `make tools`)",
            installed.display()
        );
        let child = command
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("start {what}: {e}"));
        let standin = Standin { child };
        for _ in 0..300 {
            let body = if method == "POST" { "{}" } else { "" };
            let ready = match method {
                "" => smtp_greets(port).await,
                _ => loopback_json(port, method, path, body)
                    .await
                    .is_some_and(|(s, _)| s == 200),
            };
            if ready {
                return standin;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        panic!("{what} did not start on port {port}");
    }
}

impl Drop for Standin {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A port on 127.0.0.1 free a moment ago.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

/// A Web Push service on 127.0.0.1 for the local stack's tests: `web-push-testing`
/// (npm), which subscribes like a browser's push service, checks each push's VAPID
/// signature against the key the subscription was made with, its `TTL` and encoding,
/// decrypts the payload (RFC 8291) and keeps it. Stopped when dropped.
pub struct PushService {
    pub port: u16,
    _process: Standin,
}

/// A subscription the push service made, as a browser hands it to the page.
#[derive(Debug, Clone)]
pub struct BrowserSubscription {
    /// `PushSubscription.toJSON()`, its endpoint on 127.0.0.1.
    pub json: serde_json::Value,
    pub client_hash: String,
}

impl PushService {
    pub async fn start() -> PushService {
        Self::start_on(free_port()).await
    }

    /// On `port` (the dev server's: 8091).
    pub async fn start_on(port: u16) -> PushService {
        let script = repo_root().join("node_modules/web-push-testing/src/bin/server.js");
        let mut command = std::process::Command::new("node");
        command.arg(&script).arg(port.to_string());
        let process = Standin::start(
            "web-push-testing",
            script,
            command,
            port,
            ("POST", "/status"),
        )
        .await;
        PushService {
            port,
            _process: process,
        }
    }

    async fn post(&self, path: &str, body: &str) -> Option<(u16, serde_json::Value)> {
        loopback_json(self.port, "POST", path, body).await
    }

    /// A new subscription for a page whose server signs with `vapid_public_key`.
    pub async fn subscribe(&self, vapid_public_key: &str) -> BrowserSubscription {
        let ask = serde_json::json!({"userVisibleOnly": "true", "applicationServerKey": vapid_public_key});
        let (status, body) = self
            .post("/subscribe", &ask.to_string())
            .await
            .expect("subscribe");
        assert_eq!(status, 200, "{body}");
        let data = &body["data"];
        let client_hash = data["clientHash"].as_str().expect("clientHash").to_owned();
        // The service names itself `localhost`; the local stack sends to 127.0.0.1 only.
        let endpoint = data["endpoint"]
            .as_str()
            .expect("endpoint")
            .replace("//localhost:", "//127.0.0.1:");
        BrowserSubscription {
            json: serde_json::json!({
                "endpoint": endpoint,
                "expirationTime": null,
                "keys": data["keys"],
            }),
            client_hash,
        }
    }

    /// The payloads the subscription received, decrypted, oldest first.
    pub async fn received(&self, subscription: &BrowserSubscription) -> Vec<serde_json::Value> {
        let ask = serde_json::json!({"clientHash": subscription.client_hash});
        let (status, body) = self
            .post("/get-notifications", &ask.to_string())
            .await
            .expect("get-notifications");
        assert_eq!(status, 200, "{body}");
        body["data"]["messages"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|m| {
                serde_json::from_str(m.as_str().unwrap_or("null"))
                    .unwrap_or(serde_json::Value::Null)
            })
            .collect()
    }

    /// The browser unsubscribed: the service answers pushes with 410.
    pub async fn expire(&self, subscription: &BrowserSubscription) {
        let path = format!("/expire-subscription/{}", subscription.client_hash);
        let (status, body) = self.post(&path, "{}").await.expect("expire");
        assert_eq!(status, 200, "{body}");
    }
}

/// Amazon SNS on 127.0.0.1 for mobile push: moto's server (PyPI `moto[server]`, in
/// `.venv`), which speaks SNS's query API as the SDK calls it (platform applications
/// and endpoints, `Publish` to an endpoint, `EndpointDisabled` from a disabled one)
/// and keeps what was published to each endpoint. It does not check signatures, nor
/// reach APNs or FCM: an invalid token is what [`SnsService::disable`] says, as SNS
/// does when the push service refuses one. Stopped when dropped.
pub struct SnsService {
    pub port: u16,
    _process: Standin,
}

/// The local stack's SNS platform applications (scripts/local.env names their ARNs;
/// moto's are deterministic: account 123456789012, us-east-1).
pub const LOCAL_SNS_APPLICATIONS: [(&str, &str); 2] =
    [("APNS", "chat-local-ios"), ("GCM", "chat-local-android")];

impl SnsService {
    pub async fn start() -> SnsService {
        Self::start_on(free_port()).await
    }

    /// On `port` (the dev server's: 8026), with the local platform applications made.
    pub async fn start_on(port: u16) -> SnsService {
        let server = repo_root().join(".venv/bin/moto_server");
        let mut command = std::process::Command::new(&server);
        command.args(["-H", "127.0.0.1", "-p", &port.to_string()]);
        let process = Standin::start(
            "moto_server",
            server,
            command,
            port,
            ("GET", "/moto-api/data.json"),
        )
        .await;
        let service = SnsService {
            port,
            _process: process,
        };
        for (platform, name) in LOCAL_SNS_APPLICATIONS {
            let (status, body) = service
                .call(&[
                    ("Action", "CreatePlatformApplication"),
                    ("Name", name),
                    ("Platform", platform),
                    ("Attributes.entry.1.key", "PlatformCredential"),
                    ("Attributes.entry.1.value", "local"),
                ])
                .await;
            assert_eq!(status, 200, "{body}");
        }
        service
    }

    /// The SNS endpoint (`SNS_ENDPOINT`).
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The ARN of the local platform application of `platform` (`APNS`, `GCM`).
    pub fn application_arn(platform: &str) -> String {
        let name = LOCAL_SNS_APPLICATIONS
            .iter()
            .find(|(p, _)| *p == platform)
            .map(|(_, n)| *n)
            .expect("a local platform");
        format!("arn:aws:sns:us-east-1:123456789012:app/{platform}/{name}")
    }

    /// One SNS query-API call (form-encoded, as the SDK sends it): status and text.
    async fn call(&self, params: &[(&str, &str)]) -> (u16, String) {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let enc = |s: &str| {
            s.bytes()
                .map(|b| match b {
                    b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                        (b as char).to_string()
                    }
                    _ => format!("%{b:02X}"),
                })
                .collect::<String>()
        };
        let body = params
            .iter()
            .map(|(k, v)| format!("{}={}", enc(k), enc(v)))
            .collect::<Vec<_>>()
            .join("&");
        let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", self.port))
            .await
            .expect("connect to SNS");
        let request = format!(
            "POST / HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nContent-Type: application/x-www-form-urlencoded\r\nAuthorization: AWS4-HMAC-SHA256 Credential=local/20260101/us-east-1/sns/aws4_request, SignedHeaders=host, Signature=0\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            self.port,
            body.len()
        );
        stream.write_all(request.as_bytes()).await.expect("write");
        let mut answer = Vec::new();
        stream.read_to_end(&mut answer).await.expect("read");
        let text = String::from_utf8_lossy(&answer).into_owned();
        let status = text
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        (status, text)
    }

    /// Every platform endpoint with what was published to it: (its token, whether it
    /// is on, the messages, oldest first — read in the order moto keeps them, which a
    /// `serde_json::Value` object would sort by id).
    pub async fn endpoints(&self) -> Vec<(String, bool, Vec<serde_json::Value>)> {
        #[derive(serde::Deserialize)]
        struct State {
            sns: Sns,
        }
        #[derive(serde::Deserialize)]
        struct Sns {
            #[serde(rename = "PlatformEndpoint", default)]
            endpoints: Vec<Endpoint>,
        }
        #[derive(serde::Deserialize)]
        struct Endpoint {
            token: String,
            enabled: bool,
            messages: InOrder,
        }
        /// A JSON object's values in document order.
        struct InOrder(Vec<String>);
        impl<'de> serde::Deserialize<'de> for InOrder {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<InOrder, D::Error> {
                struct Visit;
                impl<'de> serde::de::Visitor<'de> for Visit {
                    type Value = InOrder;
                    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                        f.write_str("an object of messages")
                    }
                    fn visit_map<A: serde::de::MapAccess<'de>>(
                        self,
                        mut map: A,
                    ) -> Result<InOrder, A::Error> {
                        let mut out = Vec::new();
                        while let Some((_, message)) = map.next_entry::<String, String>()? {
                            out.push(message);
                        }
                        Ok(InOrder(out))
                    }
                }
                d.deserialize_map(Visit)
            }
        }
        let text = self.state_text().await;
        let state: State = serde_json::from_str(&text).expect("moto's state");
        state
            .sns
            .endpoints
            .into_iter()
            .map(|e| {
                let messages = e
                    .messages
                    .0
                    .iter()
                    .map(|m| serde_json::from_str(m).unwrap_or(serde_json::Value::Null))
                    .collect();
                (e.token, e.enabled, messages)
            })
            .collect()
    }

    /// moto's whole state (`GET /moto-api/data.json`), as text.
    async fn state_text(&self) -> String {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", self.port))
            .await
            .expect("connect to SNS");
        let request = format!(
            "GET /moto-api/data.json HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nConnection: close\r\n\r\n",
            self.port
        );
        stream.write_all(request.as_bytes()).await.expect("write");
        let mut answer = Vec::new();
        stream.read_to_end(&mut answer).await.expect("read");
        let text = String::from_utf8_lossy(&answer).into_owned();
        let (head, body) = text.split_once("\r\n\r\n").expect("an HTTP answer");
        match head
            .to_ascii_lowercase()
            .contains("transfer-encoding: chunked")
        {
            true => dechunk_text(body),
            false => body.to_owned(),
        }
    }

    /// What was published to the endpoint of `token`, oldest first.
    pub async fn published_to(&self, token: &str) -> Vec<serde_json::Value> {
        self.endpoints()
            .await
            .into_iter()
            .filter(|(t, _, _)| t == token)
            .flat_map(|(_, _, m)| m)
            .collect()
    }

    /// The push service called `token` invalid: SNS disables its endpoint.
    pub async fn disable(&self, token: &str) {
        let (status, data) = loopback_json(self.port, "GET", "/moto-api/data.json", "")
            .await
            .expect("moto's state");
        assert_eq!(status, 200);
        let arn = data["sns"]["PlatformEndpoint"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|e| e["token"] == token)
            .and_then(|e| e["arn"].as_str())
            .expect("an endpoint for the token")
            .to_owned();
        let (status, body) = self
            .call(&[
                ("Action", "SetEndpointAttributes"),
                ("EndpointArn", &arn),
                ("Attributes.entry.1.key", "Enabled"),
                ("Attributes.entry.1.value", "false"),
            ])
            .await;
        assert_eq!(status, 200, "{body}");
    }
}

/// Amazon SES v2 on 127.0.0.1 for the local stack: `aws-ses-v2-local` (npm), which
/// takes `SendEmail` as SES v2 does (the SDK's own request, schema-checked; a
/// request without an AWS `Authorization` header is refused, though the signature
/// itself is not checked) and keeps every mail, readable at `GET /store` and in its
/// web viewer. Stopped when dropped.
pub struct MailService {
    pub port: u16,
    _process: Standin,
}

impl MailService {
    pub async fn start() -> MailService {
        Self::start_on(free_port()).await
    }

    /// On `port` (the dev server's: 8025).
    pub async fn start_on(port: u16) -> MailService {
        let script = repo_root().join("node_modules/aws-ses-v2-local/dist/cli.js");
        let mut command = std::process::Command::new("node");
        command
            .arg(&script)
            .args(["--host", "127.0.0.1", "--port", &port.to_string()]);
        let process = Standin::start(
            "aws-ses-v2-local",
            script,
            command,
            port,
            ("GET", "/health-check"),
        )
        .await;
        MailService {
            port,
            _process: process,
        }
    }

    /// The SES endpoint (`SES_ENDPOINT`).
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Every mail sent to `address`, oldest first (`GET /store`).
    pub async fn mails_to(&self, address: &str) -> Vec<serde_json::Value> {
        let (status, body) = loopback_json(self.port, "GET", "/store", "")
            .await
            .expect("the mail store");
        assert_eq!(status, 200, "{body}");
        body["emails"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|m| {
                m["destination"]["to"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .any(|to| to.as_str() == Some(address))
            })
            .cloned()
            .collect()
    }
}

/// Whether an SMTP server on `port` greets (`220`).
async fn smtp_greets(port: u16) -> bool {
    use tokio::io::AsyncReadExt;
    let Ok(mut stream) = tokio::net::TcpStream::connect(("127.0.0.1", port)).await else {
        return false;
    };
    let mut greeting = [0u8; 3];
    matches!(
        tokio::time::timeout(
            std::time::Duration::from_secs(2),
            stream.read_exact(&mut greeting)
        )
        .await,
        Ok(Ok(_)) if &greeting == b"220"
    )
}

/// Inbound mail on 127.0.0.1 as Amazon SES receives it (scripts/smtp-inbound.py:
/// aiosmtpd, pyspf and dkimpy from `.venv`): accepts mail for `domain` only, gives it
/// SES's verdicts (SPF, DKIM and DMARC against the zone in [`MailDns`], the EICAR and
/// GTUBE test strings), stores it in the local S3 under `inbound/` and invokes the
/// inbound-email function through the Lambda Invoke API at `lambda`. Stopped when
/// dropped.
pub struct InboundMail {
    pub port: u16,
    pub dns: MailDns,
    _process: Standin,
}

impl InboundMail {
    /// For `domain`, storing into `bucket` of the S3 at `s3`, invoking `lambda`.
    pub async fn start(domain: &str, s3: &str, bucket: &str, lambda: &str) -> InboundMail {
        Self::start_on(free_port(), domain, s3, bucket, lambda).await
    }

    /// On `port` (the dev server's: 2525).
    pub async fn start_on(
        port: u16,
        domain: &str,
        s3: &str,
        bucket: &str,
        lambda: &str,
    ) -> InboundMail {
        let python = repo_root().join(".venv/bin/python");
        let dns = MailDns::new();
        let mut command = std::process::Command::new(&python);
        command
            .arg(repo_root().join("scripts/smtp-inbound.py"))
            .args(["--port", &port.to_string()])
            .env("INBOUND_EMAIL_DOMAIN", domain)
            .env("S3_ENDPOINT", s3)
            .env("UPLOADS_BUCKET", bucket)
            .env("LAMBDA_ENDPOINT", lambda)
            .env("MAIL_DNS_FILE", &dns.path)
            .env("AWS_ACCESS_KEY_ID", LOCAL_S3_ACCESS_KEY)
            .env("AWS_SECRET_ACCESS_KEY", LOCAL_S3_SECRET_KEY)
            .env("AWS_REGION", "us-east-1");
        let process = Standin::start("smtp-inbound.py", python, command, port, ("", "")).await;
        InboundMail {
            port,
            dns,
            _process: process,
        }
    }

    /// Sends `data` from `mail_from` to `rcpt` over SMTP: the server's last reply
    /// (`250 …` when accepted, with the function's answer).
    pub async fn send(&self, mail_from: &str, rcpt: &[&str], data: &[u8]) -> String {
        smtp_send(self.port, mail_from, rcpt, data).await
    }
}

/// One SMTP transaction on 127.0.0.1:`port`: the reply that ended it (the first that
/// is not 2xx/3xx, or DATA's).
pub async fn smtp_send(port: u16, mail_from: &str, rcpt: &[&str], data: &[u8]) -> String {
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
    let stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("the SMTP server");
    let (read, mut write) = stream.into_split();
    let mut lines = BufReader::new(read);
    async fn reply(lines: &mut BufReader<tokio::net::tcp::OwnedReadHalf>) -> String {
        let mut all = String::new();
        loop {
            let mut line = String::new();
            if lines.read_line(&mut line).await.unwrap_or(0) == 0 {
                return all;
            }
            all.push_str(&line);
            // A multi-line reply continues with `250-`; its last line is `250 `.
            if line.as_bytes().get(3) != Some(&b'-') {
                return all.trim_end().to_owned();
            }
        }
    }
    let ok = |r: &str| r.starts_with('2') || r.starts_with('3');
    let greeting = reply(&mut lines).await;
    assert!(greeting.starts_with("220"), "{greeting}");
    let mut commands = vec![
        "EHLO client.customer.example".to_owned(),
        format!("MAIL FROM:<{mail_from}>"),
    ];
    commands.extend(rcpt.iter().map(|r| format!("RCPT TO:<{r}>")));
    commands.push("DATA".to_owned());
    for command in commands {
        write
            .write_all(format!("{command}\r\n").as_bytes())
            .await
            .expect("write");
        let answer = reply(&mut lines).await;
        if !ok(&answer) {
            let _ = write.write_all(b"QUIT\r\n").await;
            return answer;
        }
    }
    // Dot-stuffing (RFC 5321 4.5.2), CRLF line ends.
    let text = String::from_utf8_lossy(data).replace("\r\n", "\n");
    let mut body = String::new();
    for line in text.lines() {
        if line.starts_with('.') {
            body.push('.');
        }
        body.push_str(line);
        body.push_str("\r\n");
    }
    body.push_str(".\r\n");
    write.write_all(body.as_bytes()).await.expect("write");
    let answer = reply(&mut lines).await;
    let _ = write.write_all(b"QUIT\r\n").await;
    answer
}

/// The inbound mail stand-in's DNS: TXT records in a JSON file it reads on every mail.
pub struct MailDns {
    pub path: PathBuf,
}

impl MailDns {
    fn new() -> MailDns {
        let path = std::env::temp_dir().join(format!(
            "chat-mail-dns-{}-{}.json",
            std::process::id(),
            chat_core::ids::Ulid::generate().as_str().to_lowercase()
        ));
        std::fs::write(&path, "{}").expect("write the mail DNS zone");
        MailDns { path }
    }

    /// Publishes `value` as a TXT record of `name` (besides those it has).
    pub fn publish(&self, name: &str, value: &str) {
        let mut zone: serde_json::Map<String, serde_json::Value> =
            serde_json::from_slice(&std::fs::read(&self.path).expect("the zone"))
                .expect("a JSON zone");
        zone.entry(name.to_owned())
            .or_insert_with(|| serde_json::json!([]))
            .as_array_mut()
            .expect("a list of records")
            .push(serde_json::Value::String(value.to_owned()));
        std::fs::write(&self.path, serde_json::to_vec(&zone).expect("json")).expect("write");
    }
}

impl Drop for MailDns {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// A DKIM signing key of `domain` (RSA 2048, made by scripts/dkim-sign.py with
/// dkimpy's tooling) and its DNS record.
pub struct DkimKey {
    pub domain: String,
    pub selector: String,
    key: PathBuf,
    /// The `{selector}._domainkey.{domain}` TXT record that publishes it.
    pub record: String,
}

impl DkimKey {
    pub fn generate(domain: &str, selector: &str) -> DkimKey {
        let key = std::env::temp_dir().join(format!(
            "chat-dkim-{}-{}.pem",
            std::process::id(),
            chat_core::ids::Ulid::generate().as_str().to_lowercase()
        ));
        let out = std::process::Command::new(repo_root().join(".venv/bin/python"))
            .arg(repo_root().join("scripts/dkim-sign.py"))
            .args(["keygen", key.to_str().expect("utf-8 path")])
            .output()
            .expect("run dkim-sign.py");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        DkimKey {
            domain: domain.to_owned(),
            selector: selector.to_owned(),
            key,
            record: String::from_utf8_lossy(&out.stdout).trim().to_owned(),
        }
    }

    /// The record's DNS name.
    pub fn name(&self) -> String {
        format!("{}._domainkey.{}", self.selector, self.domain)
    }

    /// `raw` with this key's `DKIM-Signature` on top.
    pub fn sign(&self, raw: &[u8]) -> Vec<u8> {
        use std::io::Write;
        let mut child = std::process::Command::new(repo_root().join(".venv/bin/python"))
            .arg(repo_root().join("scripts/dkim-sign.py"))
            .args([
                "sign",
                self.key.to_str().expect("utf-8 path"),
                &self.domain,
                &self.selector,
            ])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("run dkim-sign.py");
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(raw)
            .expect("write the mail");
        let out = child.wait_with_output().expect("signed");
        assert!(out.status.success(), "dkim-sign.py failed");
        out.stdout
    }
}

impl Drop for DkimKey {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.key);
    }
}

/// A plain HTTP GET of `url` (on 127.0.0.1): its status and body, de-chunked.
pub async fn http_get_bytes(url: &str) -> (u16, Vec<u8>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let rest = url.strip_prefix("http://").unwrap();
    let (host, path) = rest.split_once('/').unwrap();
    let mut stream = tokio::net::TcpStream::connect(host).await.unwrap();
    let head = format!("GET /{path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n");
    stream.write_all(head.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).await.unwrap();
    let split = answer.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
    let head = String::from_utf8_lossy(&answer[..split]).into_owned();
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    let mut body = answer[split + 4..].to_vec();
    if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        body = dechunk_bytes(&body);
    }
    (status, body)
}
