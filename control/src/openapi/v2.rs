//! `/openapi/v2`. kubectl 1.32 reads it for one thing: a `kind: List` manifest (what `kubectl
//! get -o yaml` writes for several objects) has no v3 schema, so kubectl validates it on the
//! client with the v2 document, checking each item against the v2 definition of its kind and
//! skipping kinds the document does not define. This server validates every object itself
//! (kubectl still sends `fieldValidation=Strict` with each item's request), so the document is
//! the Swagger 2.0 header without definitions: in gnostic's protobuf, which kubectl asks for
//! (its `Document` and `Info` messages, fields by their numbers there), or as JSON.

use bytes::Bytes;
use http::{Response, StatusCode};
use prost::Message;
use serde_json::json;

use crate::http_util::{typed_response, ResponseBody};

/// The protobuf media type of an OpenAPI v2 document, as clients ask for it (client-go's
/// `openAPIV2mimePb`).
pub const PROTOBUF: &str = "application/com.github.proto-openapi.spec.v2@v1.0+protobuf";
/// The same as kube-apiserver labels its answer (an `@` is not valid in a media type: Go's
/// `mime` parser, which client-go runs on the answer, refuses it).
const PROTOBUF_ANSWER: &str = "application/com.github.proto-openapi.spec.v2.v1.0+protobuf";

/// gnostic's `openapi.v2.Document`, the fields this server sets.
#[derive(Clone, PartialEq, Message)]
struct Document {
    #[prost(string, tag = "1")]
    swagger: String,
    #[prost(message, optional, tag = "2")]
    info: Option<Info>,
}

/// gnostic's `openapi.v2.Info`, the fields this server sets.
#[derive(Clone, PartialEq, Message)]
struct Info {
    #[prost(string, tag = "1")]
    title: String,
    #[prost(string, tag = "2")]
    version: String,
}

fn version() -> String {
    format!("v1.{}.0", crate::router::KUBERNETES_MINOR)
}

/// The document, as protobuf when `accept` names it, else JSON.
pub fn respond(accept: &str) -> Response<ResponseBody> {
    if accept.contains(PROTOBUF) {
        let document = Document {
            swagger: "2.0".to_owned(),
            info: Some(Info {
                title: "Kubernetes".to_owned(),
                version: version(),
            }),
        };
        let body = Bytes::from(document.encode_to_vec());
        return typed_response(StatusCode::OK, PROTOBUF_ANSWER, body);
    }
    let document = json!({
        "swagger": "2.0",
        "info": {"title": "Kubernetes", "version": version()},
        "paths": {},
        "definitions": {},
    });
    let body = Bytes::from(serde_json::to_vec(&document).unwrap_or_default());
    typed_response(StatusCode::OK, "application/json", body)
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    async fn body(response: Response<ResponseBody>) -> Bytes {
        response
            .into_body()
            .collect()
            .await
            .map(|c| c.to_bytes())
            .unwrap_or_default()
    }

    #[tokio::test]
    async fn the_header_in_protobuf_or_json() {
        let pb = body(respond(PROTOBUF)).await;
        let document = Document::decode(pb).expect("protobuf");
        assert_eq!(document.swagger, "2.0");
        assert_eq!(
            document.info.map(|i| i.title).as_deref(),
            Some("Kubernetes")
        );
        let json: serde_json::Value =
            serde_json::from_slice(&body(respond("application/json")).await).expect("JSON");
        assert_eq!(json["swagger"], "2.0");
        assert_eq!(json["definitions"], json!({}));
    }
}
