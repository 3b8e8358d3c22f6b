//! The protobuf form of OpenAPI v2 that kube-apiserver serves for
//! `Accept: application/com.github.proto-openapi.spec.v2@v1.0+protobuf` (older kubectl
//! releases, Argo CD, client-go's `OpenAPISchema()`): gnostic's `openapi.v2.Document`.
//!
//! The messages are the subset of gnostic's `openapiv2/OpenAPIv2.proto` (package
//! `openapi.v2`) a Kubernetes document uses, written out with prost's derive macros; every
//! field number is the one in that file, and fields are declared in number order so the
//! encoding is byte-for-byte what protoc would produce. The conversion from JSON follows
//! gnostic's compiler (`openapi_v2.ParseDocument`): objects keyed by name become repeated
//! `Named*` pairs in document order, `type` and `items` become `TypeItem`/`ItemsItem`, and
//! every `x-` vendor extension, `default`, `example` and `enum` value becomes an `Any` whose
//! `yaml` field holds the value encoded as YAML.

use serde_json::{Map, Value};

/// `google.protobuf.Any` (never set by the compiler for plain vendor extensions).
#[derive(Clone, PartialEq, prost::Message)]
pub struct ProtobufAny {
    #[prost(string, tag = "1")]
    pub type_url: String,
    #[prost(bytes = "vec", tag = "2")]
    pub value: Vec<u8>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct Any {
    #[prost(message, optional, tag = "1")]
    pub value: Option<ProtobufAny>,
    #[prost(string, tag = "2")]
    pub yaml: String,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct NamedAny {
    #[prost(string, tag = "1")]
    pub name: String,
    #[prost(message, optional, tag = "2")]
    pub value: Option<Any>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct Document {
    #[prost(string, tag = "1")]
    pub swagger: String,
    #[prost(message, optional, tag = "2")]
    pub info: Option<Info>,
    #[prost(string, tag = "3")]
    pub host: String,
    #[prost(string, tag = "4")]
    pub base_path: String,
    #[prost(string, repeated, tag = "5")]
    pub schemes: Vec<String>,
    #[prost(string, repeated, tag = "6")]
    pub consumes: Vec<String>,
    #[prost(string, repeated, tag = "7")]
    pub produces: Vec<String>,
    #[prost(message, optional, tag = "8")]
    pub paths: Option<Paths>,
    #[prost(message, optional, tag = "9")]
    pub definitions: Option<Definitions>,
    #[prost(message, optional, tag = "10")]
    pub parameters: Option<ParameterDefinitions>,
    #[prost(message, optional, tag = "11")]
    pub responses: Option<ResponseDefinitions>,
    #[prost(message, repeated, tag = "12")]
    pub security: Vec<SecurityRequirement>,
    #[prost(message, optional, tag = "13")]
    pub security_definitions: Option<SecurityDefinitions>,
    #[prost(message, repeated, tag = "14")]
    pub tags: Vec<Tag>,
    #[prost(message, optional, tag = "15")]
    pub external_docs: Option<ExternalDocs>,
    #[prost(message, repeated, tag = "16")]
    pub vendor_extension: Vec<NamedAny>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct Info {
    #[prost(string, tag = "1")]
    pub title: String,
    #[prost(string, tag = "2")]
    pub version: String,
    #[prost(string, tag = "3")]
    pub description: String,
    #[prost(string, tag = "4")]
    pub terms_of_service: String,
    #[prost(message, optional, tag = "5")]
    pub contact: Option<Contact>,
    #[prost(message, optional, tag = "6")]
    pub license: Option<License>,
    #[prost(message, repeated, tag = "7")]
    pub vendor_extension: Vec<NamedAny>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct Contact {
    #[prost(string, tag = "1")]
    pub name: String,
    #[prost(string, tag = "2")]
    pub url: String,
    #[prost(string, tag = "3")]
    pub email: String,
    #[prost(message, repeated, tag = "4")]
    pub vendor_extension: Vec<NamedAny>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct License {
    #[prost(string, tag = "1")]
    pub name: String,
    #[prost(string, tag = "2")]
    pub url: String,
    #[prost(message, repeated, tag = "3")]
    pub vendor_extension: Vec<NamedAny>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct ExternalDocs {
    #[prost(string, tag = "1")]
    pub description: String,
    #[prost(string, tag = "2")]
    pub url: String,
    #[prost(message, repeated, tag = "3")]
    pub vendor_extension: Vec<NamedAny>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct Tag {
    #[prost(string, tag = "1")]
    pub name: String,
    #[prost(string, tag = "2")]
    pub description: String,
    #[prost(message, optional, tag = "3")]
    pub external_docs: Option<ExternalDocs>,
    #[prost(message, repeated, tag = "4")]
    pub vendor_extension: Vec<NamedAny>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct Paths {
    #[prost(message, repeated, tag = "1")]
    pub vendor_extension: Vec<NamedAny>,
    #[prost(message, repeated, tag = "2")]
    pub path: Vec<NamedPathItem>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct NamedPathItem {
    #[prost(string, tag = "1")]
    pub name: String,
    #[prost(message, optional, tag = "2")]
    pub value: Option<PathItem>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct PathItem {
    #[prost(string, tag = "1")]
    pub r#ref: String,
    #[prost(message, optional, tag = "2")]
    pub get: Option<Operation>,
    #[prost(message, optional, tag = "3")]
    pub put: Option<Operation>,
    #[prost(message, optional, tag = "4")]
    pub post: Option<Operation>,
    #[prost(message, optional, tag = "5")]
    pub delete: Option<Operation>,
    #[prost(message, optional, tag = "6")]
    pub options: Option<Operation>,
    #[prost(message, optional, tag = "7")]
    pub head: Option<Operation>,
    #[prost(message, optional, tag = "8")]
    pub patch: Option<Operation>,
    #[prost(message, repeated, tag = "9")]
    pub parameters: Vec<ParametersItem>,
    #[prost(message, repeated, tag = "10")]
    pub vendor_extension: Vec<NamedAny>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct Operation {
    #[prost(string, repeated, tag = "1")]
    pub tags: Vec<String>,
    #[prost(string, tag = "2")]
    pub summary: String,
    #[prost(string, tag = "3")]
    pub description: String,
    #[prost(message, optional, tag = "4")]
    pub external_docs: Option<ExternalDocs>,
    #[prost(string, tag = "5")]
    pub operation_id: String,
    #[prost(string, repeated, tag = "6")]
    pub produces: Vec<String>,
    #[prost(string, repeated, tag = "7")]
    pub consumes: Vec<String>,
    #[prost(message, repeated, tag = "8")]
    pub parameters: Vec<ParametersItem>,
    #[prost(message, optional, tag = "9")]
    pub responses: Option<Responses>,
    #[prost(string, repeated, tag = "10")]
    pub schemes: Vec<String>,
    #[prost(bool, tag = "11")]
    pub deprecated: bool,
    #[prost(message, repeated, tag = "12")]
    pub security: Vec<SecurityRequirement>,
    #[prost(message, repeated, tag = "13")]
    pub vendor_extension: Vec<NamedAny>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct ParametersItem {
    #[prost(oneof = "ParametersItemOneof", tags = "1, 2")]
    pub oneof: Option<ParametersItemOneof>,
}

#[derive(Clone, PartialEq, prost::Oneof)]
pub enum ParametersItemOneof {
    #[prost(message, tag = "1")]
    Parameter(Box<Parameter>),
    #[prost(message, tag = "2")]
    JsonReference(JsonReference),
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct JsonReference {
    #[prost(string, tag = "1")]
    pub r#ref: String,
    #[prost(string, tag = "2")]
    pub description: String,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct Parameter {
    #[prost(oneof = "ParameterOneof", tags = "1, 2")]
    pub oneof: Option<ParameterOneof>,
}

#[derive(Clone, PartialEq, prost::Oneof)]
pub enum ParameterOneof {
    #[prost(message, tag = "1")]
    BodyParameter(BodyParameter),
    #[prost(message, tag = "2")]
    NonBodyParameter(NonBodyParameter),
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct BodyParameter {
    #[prost(string, tag = "1")]
    pub description: String,
    #[prost(string, tag = "2")]
    pub name: String,
    #[prost(string, tag = "3")]
    pub r#in: String,
    #[prost(bool, tag = "4")]
    pub required: bool,
    #[prost(message, optional, tag = "5")]
    pub schema: Option<Schema>,
    #[prost(message, repeated, tag = "6")]
    pub vendor_extension: Vec<NamedAny>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct NonBodyParameter {
    #[prost(oneof = "NonBodyParameterOneof", tags = "1, 2, 3, 4")]
    pub oneof: Option<NonBodyParameterOneof>,
}

#[derive(Clone, PartialEq, prost::Oneof)]
pub enum NonBodyParameterOneof {
    #[prost(message, tag = "1")]
    HeaderParameterSubSchema(HeaderParameterSubSchema),
    #[prost(message, tag = "2")]
    FormDataParameterSubSchema(FormDataParameterSubSchema),
    #[prost(message, tag = "3")]
    QueryParameterSubSchema(QueryParameterSubSchema),
    #[prost(message, tag = "4")]
    PathParameterSubSchema(PathParameterSubSchema),
}

/// Header and path parameters share this layout (gnostic numbers them identically).
macro_rules! located_parameter {
    ($name:ident) => {
        #[derive(Clone, PartialEq, prost::Message)]
        pub struct $name {
            #[prost(bool, tag = "1")]
            pub required: bool,
            #[prost(string, tag = "2")]
            pub r#in: String,
            #[prost(string, tag = "3")]
            pub description: String,
            #[prost(string, tag = "4")]
            pub name: String,
            #[prost(string, tag = "5")]
            pub r#type: String,
            #[prost(string, tag = "6")]
            pub format: String,
            #[prost(message, optional, tag = "7")]
            pub items: Option<PrimitivesItems>,
            #[prost(string, tag = "8")]
            pub collection_format: String,
            #[prost(message, optional, tag = "9")]
            pub default: Option<Any>,
            #[prost(double, tag = "10")]
            pub maximum: f64,
            #[prost(bool, tag = "11")]
            pub exclusive_maximum: bool,
            #[prost(double, tag = "12")]
            pub minimum: f64,
            #[prost(bool, tag = "13")]
            pub exclusive_minimum: bool,
            #[prost(int64, tag = "14")]
            pub max_length: i64,
            #[prost(int64, tag = "15")]
            pub min_length: i64,
            #[prost(string, tag = "16")]
            pub pattern: String,
            #[prost(int64, tag = "17")]
            pub max_items: i64,
            #[prost(int64, tag = "18")]
            pub min_items: i64,
            #[prost(bool, tag = "19")]
            pub unique_items: bool,
            #[prost(message, repeated, tag = "20")]
            pub r#enum: Vec<Any>,
            #[prost(double, tag = "21")]
            pub multiple_of: f64,
            #[prost(message, repeated, tag = "22")]
            pub vendor_extension: Vec<NamedAny>,
        }
    };
}

/// Query and form-data parameters share this layout (with `allowEmptyValue` as field 5).
macro_rules! valued_parameter {
    ($name:ident) => {
        #[derive(Clone, PartialEq, prost::Message)]
        pub struct $name {
            #[prost(bool, tag = "1")]
            pub required: bool,
            #[prost(string, tag = "2")]
            pub r#in: String,
            #[prost(string, tag = "3")]
            pub description: String,
            #[prost(string, tag = "4")]
            pub name: String,
            #[prost(bool, tag = "5")]
            pub allow_empty_value: bool,
            #[prost(string, tag = "6")]
            pub r#type: String,
            #[prost(string, tag = "7")]
            pub format: String,
            #[prost(message, optional, tag = "8")]
            pub items: Option<PrimitivesItems>,
            #[prost(string, tag = "9")]
            pub collection_format: String,
            #[prost(message, optional, tag = "10")]
            pub default: Option<Any>,
            #[prost(double, tag = "11")]
            pub maximum: f64,
            #[prost(bool, tag = "12")]
            pub exclusive_maximum: bool,
            #[prost(double, tag = "13")]
            pub minimum: f64,
            #[prost(bool, tag = "14")]
            pub exclusive_minimum: bool,
            #[prost(int64, tag = "15")]
            pub max_length: i64,
            #[prost(int64, tag = "16")]
            pub min_length: i64,
            #[prost(string, tag = "17")]
            pub pattern: String,
            #[prost(int64, tag = "18")]
            pub max_items: i64,
            #[prost(int64, tag = "19")]
            pub min_items: i64,
            #[prost(bool, tag = "20")]
            pub unique_items: bool,
            #[prost(message, repeated, tag = "21")]
            pub r#enum: Vec<Any>,
            #[prost(double, tag = "22")]
            pub multiple_of: f64,
            #[prost(message, repeated, tag = "23")]
            pub vendor_extension: Vec<NamedAny>,
        }
    };
}

located_parameter!(HeaderParameterSubSchema);
located_parameter!(PathParameterSubSchema);
valued_parameter!(QueryParameterSubSchema);
valued_parameter!(FormDataParameterSubSchema);

#[derive(Clone, PartialEq, prost::Message)]
pub struct PrimitivesItems {
    #[prost(string, tag = "1")]
    pub r#type: String,
    #[prost(string, tag = "2")]
    pub format: String,
    #[prost(message, optional, boxed, tag = "3")]
    pub items: Option<Box<PrimitivesItems>>,
    #[prost(string, tag = "4")]
    pub collection_format: String,
    #[prost(message, optional, tag = "5")]
    pub default: Option<Any>,
    #[prost(double, tag = "6")]
    pub maximum: f64,
    #[prost(bool, tag = "7")]
    pub exclusive_maximum: bool,
    #[prost(double, tag = "8")]
    pub minimum: f64,
    #[prost(bool, tag = "9")]
    pub exclusive_minimum: bool,
    #[prost(int64, tag = "10")]
    pub max_length: i64,
    #[prost(int64, tag = "11")]
    pub min_length: i64,
    #[prost(string, tag = "12")]
    pub pattern: String,
    #[prost(int64, tag = "13")]
    pub max_items: i64,
    #[prost(int64, tag = "14")]
    pub min_items: i64,
    #[prost(bool, tag = "15")]
    pub unique_items: bool,
    #[prost(message, repeated, tag = "16")]
    pub r#enum: Vec<Any>,
    #[prost(double, tag = "17")]
    pub multiple_of: f64,
    #[prost(message, repeated, tag = "18")]
    pub vendor_extension: Vec<NamedAny>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct Responses {
    #[prost(message, repeated, tag = "1")]
    pub response_code: Vec<NamedResponseValue>,
    #[prost(message, repeated, tag = "2")]
    pub vendor_extension: Vec<NamedAny>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct NamedResponseValue {
    #[prost(string, tag = "1")]
    pub name: String,
    #[prost(message, optional, tag = "2")]
    pub value: Option<ResponseValue>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct ResponseValue {
    #[prost(oneof = "ResponseValueOneof", tags = "1, 2")]
    pub oneof: Option<ResponseValueOneof>,
}

#[derive(Clone, PartialEq, prost::Oneof)]
pub enum ResponseValueOneof {
    #[prost(message, tag = "1")]
    Response(Box<Response>),
    #[prost(message, tag = "2")]
    JsonReference(JsonReference),
}

/// gnostic's `Response`, without `headers` (3) and `examples` (4), which Kubernetes documents
/// never carry.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Response {
    #[prost(string, tag = "1")]
    pub description: String,
    #[prost(message, optional, tag = "2")]
    pub schema: Option<SchemaItem>,
    #[prost(message, repeated, tag = "5")]
    pub vendor_extension: Vec<NamedAny>,
}

/// gnostic's `SchemaItem` (`file_schema`, field 2, is never used by Kubernetes).
#[derive(Clone, PartialEq, prost::Message)]
pub struct SchemaItem {
    #[prost(oneof = "SchemaItemOneof", tags = "1")]
    pub oneof: Option<SchemaItemOneof>,
}

#[derive(Clone, PartialEq, prost::Oneof)]
pub enum SchemaItemOneof {
    #[prost(message, tag = "1")]
    Schema(Schema),
}

/// gnostic's `Schema`, without `xml` (28).
#[derive(Clone, PartialEq, prost::Message)]
pub struct Schema {
    #[prost(string, tag = "1")]
    pub r#ref: String,
    #[prost(string, tag = "2")]
    pub format: String,
    #[prost(string, tag = "3")]
    pub title: String,
    #[prost(string, tag = "4")]
    pub description: String,
    #[prost(message, optional, tag = "5")]
    pub default: Option<Any>,
    #[prost(double, tag = "6")]
    pub multiple_of: f64,
    #[prost(double, tag = "7")]
    pub maximum: f64,
    #[prost(bool, tag = "8")]
    pub exclusive_maximum: bool,
    #[prost(double, tag = "9")]
    pub minimum: f64,
    #[prost(bool, tag = "10")]
    pub exclusive_minimum: bool,
    #[prost(int64, tag = "11")]
    pub max_length: i64,
    #[prost(int64, tag = "12")]
    pub min_length: i64,
    #[prost(string, tag = "13")]
    pub pattern: String,
    #[prost(int64, tag = "14")]
    pub max_items: i64,
    #[prost(int64, tag = "15")]
    pub min_items: i64,
    #[prost(bool, tag = "16")]
    pub unique_items: bool,
    #[prost(int64, tag = "17")]
    pub max_properties: i64,
    #[prost(int64, tag = "18")]
    pub min_properties: i64,
    #[prost(string, repeated, tag = "19")]
    pub required: Vec<String>,
    #[prost(message, repeated, tag = "20")]
    pub r#enum: Vec<Any>,
    #[prost(message, optional, tag = "21")]
    pub additional_properties: Option<AdditionalPropertiesItem>,
    #[prost(message, optional, tag = "22")]
    pub r#type: Option<TypeItem>,
    #[prost(message, optional, tag = "23")]
    pub items: Option<ItemsItem>,
    #[prost(message, repeated, tag = "24")]
    pub all_of: Vec<Schema>,
    #[prost(message, optional, tag = "25")]
    pub properties: Option<Properties>,
    #[prost(string, tag = "26")]
    pub discriminator: String,
    #[prost(bool, tag = "27")]
    pub read_only: bool,
    #[prost(message, optional, tag = "29")]
    pub external_docs: Option<ExternalDocs>,
    #[prost(message, optional, tag = "30")]
    pub example: Option<Any>,
    #[prost(message, repeated, tag = "31")]
    pub vendor_extension: Vec<NamedAny>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct AdditionalPropertiesItem {
    #[prost(oneof = "AdditionalPropertiesItemOneof", tags = "1, 2")]
    pub oneof: Option<AdditionalPropertiesItemOneof>,
}

#[derive(Clone, PartialEq, prost::Oneof)]
pub enum AdditionalPropertiesItemOneof {
    #[prost(message, tag = "1")]
    Schema(Box<Schema>),
    #[prost(bool, tag = "2")]
    Boolean(bool),
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct TypeItem {
    #[prost(string, repeated, tag = "1")]
    pub value: Vec<String>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct ItemsItem {
    #[prost(message, repeated, tag = "1")]
    pub schema: Vec<Schema>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct Properties {
    #[prost(message, repeated, tag = "1")]
    pub additional_properties: Vec<NamedSchema>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct NamedSchema {
    #[prost(string, tag = "1")]
    pub name: String,
    #[prost(message, optional, tag = "2")]
    pub value: Option<Schema>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct Definitions {
    #[prost(message, repeated, tag = "1")]
    pub additional_properties: Vec<NamedSchema>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct ParameterDefinitions {
    #[prost(message, repeated, tag = "1")]
    pub additional_properties: Vec<NamedParameter>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct NamedParameter {
    #[prost(string, tag = "1")]
    pub name: String,
    #[prost(message, optional, tag = "2")]
    pub value: Option<Parameter>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct ResponseDefinitions {
    #[prost(message, repeated, tag = "1")]
    pub additional_properties: Vec<NamedResponse>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct NamedResponse {
    #[prost(string, tag = "1")]
    pub name: String,
    #[prost(message, optional, tag = "2")]
    pub value: Option<Response>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct SecurityRequirement {
    #[prost(message, repeated, tag = "1")]
    pub additional_properties: Vec<NamedStringArray>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct NamedStringArray {
    #[prost(string, tag = "1")]
    pub name: String,
    #[prost(message, optional, tag = "2")]
    pub value: Option<StringArray>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct StringArray {
    #[prost(string, repeated, tag = "1")]
    pub value: Vec<String>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct SecurityDefinitions {
    #[prost(message, repeated, tag = "1")]
    pub additional_properties: Vec<NamedSecurityDefinitionsItem>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct NamedSecurityDefinitionsItem {
    #[prost(string, tag = "1")]
    pub name: String,
    #[prost(message, optional, tag = "2")]
    pub value: Option<SecurityDefinitionsItem>,
}

/// gnostic's `SecurityDefinitionsItem` with its basic and API-key alternatives (the OAuth2
/// ones, 3 to 6, are not used by Kubernetes).
#[derive(Clone, PartialEq, prost::Message)]
pub struct SecurityDefinitionsItem {
    #[prost(oneof = "SecurityDefinitionsItemOneof", tags = "1, 2")]
    pub oneof: Option<SecurityDefinitionsItemOneof>,
}

#[derive(Clone, PartialEq, prost::Oneof)]
pub enum SecurityDefinitionsItemOneof {
    #[prost(message, tag = "1")]
    BasicAuthenticationSecurity(BasicAuthenticationSecurity),
    #[prost(message, tag = "2")]
    ApiKeySecurity(ApiKeySecurity),
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct BasicAuthenticationSecurity {
    #[prost(string, tag = "1")]
    pub r#type: String,
    #[prost(string, tag = "2")]
    pub description: String,
    #[prost(message, repeated, tag = "3")]
    pub vendor_extension: Vec<NamedAny>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct ApiKeySecurity {
    #[prost(string, tag = "1")]
    pub r#type: String,
    #[prost(string, tag = "2")]
    pub name: String,
    #[prost(string, tag = "3")]
    pub r#in: String,
    #[prost(string, tag = "4")]
    pub description: String,
    #[prost(message, repeated, tag = "5")]
    pub vendor_extension: Vec<NamedAny>,
}

// ---- JSON to messages, as gnostic's compiler does it ----

/// A value as gnostic stores it: YAML text in `Any.yaml`.
pub(crate) fn yaml(value: &Value) -> String {
    // Serializing a JSON value cannot fail; should it ever, JSON is valid YAML too.
    serde_saphyr::to_string(value).unwrap_or_else(|_| format!("{value}\n"))
}

fn any(value: &Value) -> Any {
    Any {
        value: None,
        yaml: yaml(value),
    }
}

fn obj(value: &Value) -> Option<&Map<String, Value>> {
    value.as_object()
}

fn s(map: &Map<String, Value>, key: &str) -> String {
    map.get(key)
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string()
}

fn b(map: &Map<String, Value>, key: &str) -> bool {
    map.get(key).and_then(Value::as_bool).unwrap_or_default()
}

fn f(map: &Map<String, Value>, key: &str) -> f64 {
    map.get(key).and_then(Value::as_f64).unwrap_or_default()
}

fn i(map: &Map<String, Value>, key: &str) -> i64 {
    map.get(key).and_then(Value::as_i64).unwrap_or_default()
}

fn strings(map: &Map<String, Value>, key: &str) -> Vec<String> {
    map.get(key)
        .and_then(Value::as_array)
        .map(|items| {
            items
                .iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default()
}

fn anys(map: &Map<String, Value>, key: &str) -> Vec<Any> {
    map.get(key)
        .and_then(Value::as_array)
        .map(|items| items.iter().map(any).collect())
        .unwrap_or_default()
}

fn extensions(map: &Map<String, Value>) -> Vec<NamedAny> {
    map.iter()
        .filter(|(k, _)| k.starts_with("x-"))
        .map(|(k, v)| NamedAny {
            name: k.clone(),
            value: Some(any(v)),
        })
        .collect()
}

fn external_docs(map: &Map<String, Value>) -> Option<ExternalDocs> {
    let docs = obj(map.get("externalDocs")?)?;
    Some(ExternalDocs {
        description: s(docs, "description"),
        url: s(docs, "url"),
        vendor_extension: extensions(docs),
    })
}

/// The protobuf encoding of a Swagger 2.0 document, as kube-apiserver serves it.
pub fn v2_protobuf(doc: &Value) -> Vec<u8> {
    prost::Message::encode_to_vec(&document(doc))
}

/// The gnostic message of a Swagger 2.0 document.
pub fn document(doc: &Value) -> Document {
    let empty = Map::new();
    let m = obj(doc).unwrap_or(&empty);
    Document {
        swagger: s(m, "swagger"),
        info: m.get("info").and_then(obj).map(info),
        host: s(m, "host"),
        base_path: s(m, "basePath"),
        schemes: strings(m, "schemes"),
        consumes: strings(m, "consumes"),
        produces: strings(m, "produces"),
        paths: m.get("paths").and_then(obj).map(paths),
        definitions: m.get("definitions").and_then(obj).map(|d| Definitions {
            additional_properties: named_schemas(d),
        }),
        parameters: m
            .get("parameters")
            .and_then(obj)
            .map(|p| ParameterDefinitions {
                additional_properties: p
                    .iter()
                    .map(|(name, v)| NamedParameter {
                        name: name.clone(),
                        value: obj(v).map(parameter),
                    })
                    .collect(),
            }),
        responses: m
            .get("responses")
            .and_then(obj)
            .map(|r| ResponseDefinitions {
                additional_properties: r
                    .iter()
                    .map(|(name, v)| NamedResponse {
                        name: name.clone(),
                        value: obj(v).map(response),
                    })
                    .collect(),
            }),
        security: security(m),
        security_definitions: m.get("securityDefinitions").and_then(obj).map(|d| {
            SecurityDefinitions {
                additional_properties: d
                    .iter()
                    .filter_map(|(name, v)| {
                        Some(NamedSecurityDefinitionsItem {
                            name: name.clone(),
                            value: Some(security_definition(obj(v)?)?),
                        })
                    })
                    .collect(),
            }
        }),
        tags: m
            .get("tags")
            .and_then(Value::as_array)
            .map(|tags| {
                tags.iter()
                    .filter_map(obj)
                    .map(|t| Tag {
                        name: s(t, "name"),
                        description: s(t, "description"),
                        external_docs: external_docs(t),
                        vendor_extension: extensions(t),
                    })
                    .collect()
            })
            .unwrap_or_default(),
        external_docs: external_docs(m),
        vendor_extension: extensions(m),
    }
}

fn info(m: &Map<String, Value>) -> Info {
    Info {
        title: s(m, "title"),
        version: s(m, "version"),
        description: s(m, "description"),
        terms_of_service: s(m, "termsOfService"),
        contact: m.get("contact").and_then(obj).map(|c| Contact {
            name: s(c, "name"),
            url: s(c, "url"),
            email: s(c, "email"),
            vendor_extension: extensions(c),
        }),
        license: m.get("license").and_then(obj).map(|l| License {
            name: s(l, "name"),
            url: s(l, "url"),
            vendor_extension: extensions(l),
        }),
        vendor_extension: extensions(m),
    }
}

fn security(m: &Map<String, Value>) -> Vec<SecurityRequirement> {
    m.get("security")
        .and_then(Value::as_array)
        .map(|reqs| {
            reqs.iter()
                .filter_map(obj)
                .map(|req| SecurityRequirement {
                    additional_properties: req
                        .iter()
                        .map(|(name, scopes)| NamedStringArray {
                            name: name.clone(),
                            value: Some(StringArray {
                                value: scopes
                                    .as_array()
                                    .map(|s| {
                                        s.iter()
                                            .filter_map(Value::as_str)
                                            .map(str::to_string)
                                            .collect()
                                    })
                                    .unwrap_or_default(),
                            }),
                        })
                        .collect(),
                })
                .collect()
        })
        .unwrap_or_default()
}

fn security_definition(m: &Map<String, Value>) -> Option<SecurityDefinitionsItem> {
    let oneof = match m.get("type").and_then(Value::as_str)? {
        "basic" => {
            SecurityDefinitionsItemOneof::BasicAuthenticationSecurity(BasicAuthenticationSecurity {
                r#type: s(m, "type"),
                description: s(m, "description"),
                vendor_extension: extensions(m),
            })
        }
        "apiKey" => SecurityDefinitionsItemOneof::ApiKeySecurity(ApiKeySecurity {
            r#type: s(m, "type"),
            name: s(m, "name"),
            r#in: s(m, "in"),
            description: s(m, "description"),
            vendor_extension: extensions(m),
        }),
        _ => return None,
    };
    Some(SecurityDefinitionsItem { oneof: Some(oneof) })
}

fn paths(m: &Map<String, Value>) -> Paths {
    Paths {
        vendor_extension: extensions(m),
        path: m
            .iter()
            .filter(|(k, _)| k.starts_with('/'))
            .map(|(k, v)| NamedPathItem {
                name: k.clone(),
                value: obj(v).map(path_item),
            })
            .collect(),
    }
}

fn path_item(m: &Map<String, Value>) -> PathItem {
    let op = |key: &str| m.get(key).and_then(obj).map(operation);
    PathItem {
        r#ref: s(m, "$ref"),
        get: op("get"),
        put: op("put"),
        post: op("post"),
        delete: op("delete"),
        options: op("options"),
        head: op("head"),
        patch: op("patch"),
        parameters: parameters_items(m),
        vendor_extension: extensions(m),
    }
}

fn operation(m: &Map<String, Value>) -> Operation {
    Operation {
        tags: strings(m, "tags"),
        summary: s(m, "summary"),
        description: s(m, "description"),
        external_docs: external_docs(m),
        operation_id: s(m, "operationId"),
        produces: strings(m, "produces"),
        consumes: strings(m, "consumes"),
        parameters: parameters_items(m),
        responses: m.get("responses").and_then(obj).map(|r| Responses {
            response_code: r
                .iter()
                .filter(|(code, _)| !code.starts_with("x-"))
                .map(|(code, v)| NamedResponseValue {
                    name: code.clone(),
                    value: obj(v).map(response_value),
                })
                .collect(),
            vendor_extension: extensions(r),
        }),
        schemes: strings(m, "schemes"),
        deprecated: b(m, "deprecated"),
        security: security(m),
        vendor_extension: extensions(m),
    }
}

fn parameters_items(m: &Map<String, Value>) -> Vec<ParametersItem> {
    m.get("parameters")
        .and_then(Value::as_array)
        .map(|params| {
            params
                .iter()
                .filter_map(obj)
                .map(|p| {
                    let oneof = if p.contains_key("$ref") {
                        ParametersItemOneof::JsonReference(JsonReference {
                            r#ref: s(p, "$ref"),
                            description: s(p, "description"),
                        })
                    } else {
                        ParametersItemOneof::Parameter(Box::new(parameter(p)))
                    };
                    ParametersItem { oneof: Some(oneof) }
                })
                .collect()
        })
        .unwrap_or_default()
}

fn primitives_items(value: Option<&Value>) -> Option<PrimitivesItems> {
    let m = obj(value?)?;
    Some(PrimitivesItems {
        r#type: s(m, "type"),
        format: s(m, "format"),
        items: primitives_items(m.get("items")).map(Box::new),
        collection_format: s(m, "collectionFormat"),
        default: m.get("default").map(any),
        maximum: f(m, "maximum"),
        exclusive_maximum: b(m, "exclusiveMaximum"),
        minimum: f(m, "minimum"),
        exclusive_minimum: b(m, "exclusiveMinimum"),
        max_length: i(m, "maxLength"),
        min_length: i(m, "minLength"),
        pattern: s(m, "pattern"),
        max_items: i(m, "maxItems"),
        min_items: i(m, "minItems"),
        unique_items: b(m, "uniqueItems"),
        r#enum: anys(m, "enum"),
        multiple_of: f(m, "multipleOf"),
        vendor_extension: extensions(m),
    })
}

macro_rules! sub_schema {
    ($ty:ident, $m:expr, { $($extra:tt)* }) => {
        $ty {
            required: b($m, "required"),
            r#in: s($m, "in"),
            description: s($m, "description"),
            name: s($m, "name"),
            r#type: s($m, "type"),
            format: s($m, "format"),
            items: primitives_items($m.get("items")),
            collection_format: s($m, "collectionFormat"),
            default: $m.get("default").map(any),
            maximum: f($m, "maximum"),
            exclusive_maximum: b($m, "exclusiveMaximum"),
            minimum: f($m, "minimum"),
            exclusive_minimum: b($m, "exclusiveMinimum"),
            max_length: i($m, "maxLength"),
            min_length: i($m, "minLength"),
            pattern: s($m, "pattern"),
            max_items: i($m, "maxItems"),
            min_items: i($m, "minItems"),
            unique_items: b($m, "uniqueItems"),
            r#enum: anys($m, "enum"),
            multiple_of: f($m, "multipleOf"),
            vendor_extension: extensions($m),
            $($extra)*
        }
    };
}

/// A parameter by where it is: gnostic picks the alternative whose `in` matches.
fn parameter(m: &Map<String, Value>) -> Parameter {
    let non_body = match m.get("in").and_then(Value::as_str).unwrap_or_default() {
        "body" => {
            return Parameter {
                oneof: Some(ParameterOneof::BodyParameter(BodyParameter {
                    description: s(m, "description"),
                    name: s(m, "name"),
                    r#in: s(m, "in"),
                    required: b(m, "required"),
                    schema: m.get("schema").and_then(obj).map(schema),
                    vendor_extension: extensions(m),
                })),
            };
        }
        "header" => NonBodyParameterOneof::HeaderParameterSubSchema(sub_schema!(
            HeaderParameterSubSchema,
            m,
            {}
        )),
        "formData" => NonBodyParameterOneof::FormDataParameterSubSchema(
            sub_schema!(FormDataParameterSubSchema, m, { allow_empty_value: b(m, "allowEmptyValue"), }),
        ),
        "path" => {
            NonBodyParameterOneof::PathParameterSubSchema(sub_schema!(PathParameterSubSchema, m, {}))
        }
        _ => NonBodyParameterOneof::QueryParameterSubSchema(
            sub_schema!(QueryParameterSubSchema, m, { allow_empty_value: b(m, "allowEmptyValue"), }),
        ),
    };
    Parameter {
        oneof: Some(ParameterOneof::NonBodyParameter(NonBodyParameter {
            oneof: Some(non_body),
        })),
    }
}

fn response_value(m: &Map<String, Value>) -> ResponseValue {
    let oneof = if m.contains_key("$ref") {
        ResponseValueOneof::JsonReference(JsonReference {
            r#ref: s(m, "$ref"),
            description: s(m, "description"),
        })
    } else {
        ResponseValueOneof::Response(Box::new(response(m)))
    };
    ResponseValue { oneof: Some(oneof) }
}

fn response(m: &Map<String, Value>) -> Response {
    Response {
        description: s(m, "description"),
        schema: m.get("schema").and_then(obj).map(|sch| SchemaItem {
            oneof: Some(SchemaItemOneof::Schema(schema(sch))),
        }),
        vendor_extension: extensions(m),
    }
}

fn named_schemas(m: &Map<String, Value>) -> Vec<NamedSchema> {
    m.iter()
        .map(|(name, v)| NamedSchema {
            name: name.clone(),
            value: obj(v).map(schema),
        })
        .collect()
}

fn schema(m: &Map<String, Value>) -> Schema {
    Schema {
        r#ref: s(m, "$ref"),
        format: s(m, "format"),
        title: s(m, "title"),
        description: s(m, "description"),
        default: m.get("default").map(any),
        multiple_of: f(m, "multipleOf"),
        maximum: f(m, "maximum"),
        exclusive_maximum: b(m, "exclusiveMaximum"),
        minimum: f(m, "minimum"),
        exclusive_minimum: b(m, "exclusiveMinimum"),
        max_length: i(m, "maxLength"),
        min_length: i(m, "minLength"),
        pattern: s(m, "pattern"),
        max_items: i(m, "maxItems"),
        min_items: i(m, "minItems"),
        unique_items: b(m, "uniqueItems"),
        max_properties: i(m, "maxProperties"),
        min_properties: i(m, "minProperties"),
        required: strings(m, "required"),
        r#enum: anys(m, "enum"),
        additional_properties: m.get("additionalProperties").and_then(|v| {
            let oneof = match v {
                Value::Bool(allowed) => AdditionalPropertiesItemOneof::Boolean(*allowed),
                Value::Object(sub) => AdditionalPropertiesItemOneof::Schema(Box::new(schema(sub))),
                _ => return None,
            };
            Some(AdditionalPropertiesItem { oneof: Some(oneof) })
        }),
        r#type: m.get("type").and_then(|t| match t {
            Value::String(t) => Some(TypeItem {
                value: vec![t.clone()],
            }),
            Value::Array(ts) => Some(TypeItem {
                value: ts
                    .iter()
                    .filter_map(Value::as_str)
                    .map(str::to_string)
                    .collect(),
            }),
            _ => None,
        }),
        items: m.get("items").and_then(|items| match items {
            Value::Object(one) => Some(ItemsItem {
                schema: vec![schema(one)],
            }),
            Value::Array(many) => Some(ItemsItem {
                schema: many.iter().filter_map(obj).map(schema).collect(),
            }),
            _ => None,
        }),
        all_of: m
            .get("allOf")
            .and_then(Value::as_array)
            .map(|all| all.iter().filter_map(obj).map(schema).collect())
            .unwrap_or_default(),
        properties: m.get("properties").and_then(obj).map(|p| Properties {
            additional_properties: named_schemas(p),
        }),
        discriminator: s(m, "discriminator"),
        read_only: b(m, "readOnly"),
        external_docs: external_docs(m),
        example: m.get("example").map(any),
        vendor_extension: extensions(m),
    }
}
