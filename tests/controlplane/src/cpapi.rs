//! The API of the control-plane objects: kube-system Secrets (get, list, create, update,
//! delete), the first control plane's mirror Pods (get, list with label and field selectors),
//! and kube-system Roles and RoleBindings (get, create, update, delete). Authentication and
//! authorization happened before (`server.rs`); these answer like kube-apiserver's REST
//! storage. Other namespaces hold none of these objects.

use crate::kubesystem::{decode_secret, NAMESPACE};
use crate::objects::{FieldError, List, ObjectMeta, Status, PODS, SECRETS};
use crate::server::{Ctx, RespBody};
use hyper::Response;

fn namespace_not_found(ns: &str) -> Status {
    Status::not_found(
        crate::objects::GroupResource {
            group: "",
            resource: "namespaces",
        },
        ns,
    )
}

pub(crate) fn secrets(ctx: &Ctx) -> Response<RespBody> {
    let ri = &ctx.ri;
    if !ri.subresource.is_empty() {
        return ctx.status(&Status::no_such_resource());
    }
    let ks = &ctx.state.kube_system;
    let here = ri.namespace == NAMESPACE;
    match ri.verb.as_str() {
        "get" if here => match ks.secret(&ri.name) {
            Some(s) => ctx.json(200, &s),
            None => ctx.status(&Status::not_found(SECRETS, &ri.name)),
        },
        "get" => ctx.status(&Status::not_found(SECRETS, &ri.name)),
        "list" if here || ri.namespace.is_empty() => ctx.json(200, &ks.list_secrets()),
        "list" => ctx.json(
            200,
            &List::<crate::kubesystem::Secret> {
                kind: "SecretList",
                api_version: "v1",
                metadata: ObjectMeta::default(),
                items: Vec::new(),
            },
        ),
        "create" | "update" if !here => ctx.status(&namespace_not_found(&ri.namespace)),
        "create" | "update" => {
            let mut new = match decode_secret(&ctx.body) {
                Ok(n) => n,
                Err(status) => return ctx.status(&status),
            };
            let update = ri.verb == "update";
            if update && !new.name.is_empty() && new.name != ri.name {
                return ctx.status(&Status::bad_request(format!(
                    "the name of the object ({}) does not match the name on the URL ({})",
                    new.name, ri.name
                )));
            }
            if update {
                new.name = ri.name.clone();
            }
            if new.name.is_empty() {
                return ctx.status(&Status::invalid(
                    "",
                    "Secret",
                    "",
                    &[FieldError::required(
                        "metadata.name",
                        "name or generateName is required",
                    )],
                ));
            }
            let manager = manager(ctx);
            match ks.put_secret(new, update, &manager) {
                Ok(s) => ctx.json(if update { 200 } else { 201 }, &s),
                Err(status) => ctx.status(&status),
            }
        }
        "delete" if here => match ks.delete_secret(&ri.name) {
            Ok(s) | Err(s) => ctx.status(&s),
        },
        "delete" => ctx.status(&Status::not_found(SECRETS, &ri.name)),
        _ => ctx.status(&Status::method_not_allowed()),
    }
}

/// The field manager the apiserver records: the client's user agent up to the first `/`.
fn manager(ctx: &Ctx) -> String {
    ctx.user_agent
        .split('/')
        .next()
        .filter(|m| !m.is_empty())
        .unwrap_or("unknown")
        .to_string()
}

pub(crate) fn pods(ctx: &Ctx) -> Response<RespBody> {
    let ri = &ctx.ri;
    if !ri.subresource.is_empty() {
        return ctx.status(&Status::no_such_resource());
    }
    let all = match &ctx.state.cp {
        Some(cp) if ri.namespace == NAMESPACE || ri.namespace.is_empty() => {
            let uid = ctx
                .state
                .node_uid(&cp.config.first_node)
                .unwrap_or_default();
            cp.pods(&uid)
        }
        _ => Vec::new(),
    };
    match ri.verb.as_str() {
        "get" => match all.into_iter().find(|p| p.metadata.name == ri.name) {
            Some(p) => ctx.json(200, &p),
            None => ctx.status(&Status::not_found(PODS, &ri.name)),
        },
        "list" => {
            let selector = match crate::pods::Selector::parse(ctx.query.get("labelSelector")) {
                Ok(s) => s,
                Err(status) => return ctx.status(&status),
            };
            let fields = match crate::auth::parse_field_selector(
                ctx.query.get("fieldSelector").unwrap_or_default(),
            ) {
                Ok(f) => f,
                Err(e) => return ctx.status(&Status::bad_request(e)),
            };
            if let Some(t) = fields
                .iter()
                .find(|t| !matches!(t.field.as_str(), "metadata.name" | "spec.nodeName"))
            {
                return ctx.status(&Status::bad_request(format!(
                    "field label not supported: {}",
                    t.field
                )));
            }
            let items = all
                .into_iter()
                .filter(|p| selector.matches(&p.metadata.labels))
                .filter(|p| {
                    fields.iter().all(|t| {
                        let actual = if t.field == "metadata.name" {
                            &p.metadata.name
                        } else {
                            &p.spec.node_name
                        };
                        (actual == &t.value) == t.equals
                    })
                })
                .map(|mut p| {
                    p.kind = None;
                    p.api_version = None;
                    p
                })
                .collect();
            ctx.json(
                200,
                &List {
                    kind: "PodList",
                    api_version: "v1",
                    metadata: ObjectMeta {
                        resource_version: "300".into(),
                        ..ObjectMeta::default()
                    },
                    items,
                },
            )
        }
        _ => ctx.status(&Status::method_not_allowed()),
    }
}

pub(crate) fn rbac(ctx: &Ctx) -> Response<RespBody> {
    let ri = &ctx.ri;
    if !ri.subresource.is_empty() {
        return ctx.status(&Status::no_such_resource());
    }
    let gr = crate::objects::GroupResource {
        group: "rbac.authorization.k8s.io",
        resource: if ri.resource == "roles" {
            "roles"
        } else {
            "rolebindings"
        },
    };
    let ks = &ctx.state.kube_system;
    let here = ri.namespace == NAMESPACE;
    match ri.verb.as_str() {
        "get" => match ks.rbac(&ri.resource, &ri.name).filter(|_| here) {
            Some(v) => ctx.json(200, &v),
            None => ctx.status(&Status::not_found(gr, &ri.name)),
        },
        "create" | "update" if !here => ctx.status(&namespace_not_found(&ri.namespace)),
        "create" | "update" => {
            let body: serde_json::Value = match serde_json::from_slice(&ctx.body) {
                Ok(v) => v,
                Err(e) => {
                    return ctx.status(&Status::bad_request(format!(
                        "couldn't get version/kind; json parse error: {e}"
                    )))
                }
            };
            let name = body
                .pointer("/metadata/name")
                .and_then(|n| n.as_str())
                .unwrap_or_default()
                .to_string();
            let name = if ri.verb == "update" {
                ri.name.clone()
            } else {
                name
            };
            match ks.put_rbac(&ri.resource, &body, &name, ri.verb == "update") {
                Ok(v) => ctx.json(if ri.verb == "update" { 200 } else { 201 }, &v),
                Err(status) => ctx.status(&status),
            }
        }
        "delete" if here => match ks.delete_rbac(&ri.resource, &ri.name) {
            Ok(s) | Err(s) => ctx.status(&s),
        },
        "delete" => ctx.status(&Status::not_found(gr, &ri.name)),
        _ => ctx.status(&Status::method_not_allowed()),
    }
}
