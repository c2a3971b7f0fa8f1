//! The one YAML reader of kubejoin: config files, user-data, kubeconfigs, the cluster's
//! ConfigMaps. Built on `granit-parser` (pure Rust, `unsafe` forbidden, linear time, with
//! flow and block nesting limits); this module turns its events into a tree of [`Node`]s and
//! gives that tree to serde.
//!
//! # Budgets
//! Every input is bounded before any of it is used, so a hostile document is refused in time
//! linear in its size (and at most ~1 MiB is ever read: the callers cap their inputs):
//!
//! | budget | limit | refuses |
//! |---|---|---|
//! | nesting of flow and block collections | [`MAX_DEPTH`] | `[[[[…`, `{{{{…`, `- - - - …` |
//! | nodes, counting every alias expansion | [`MAX_NODES`] | "billion laughs", alias floods |
//! | documents in one stream | [`MAX_DOCUMENTS`] | `---` storms |
//!
//! A refusal is an [`ErrorKind::Limit`] naming the budget and its limit.
//!
//! # Schema
//! YAML 1.2 core schema, as the previous decoder (`serde_yaml` 0.9) read it: only `true`/`false`
//! (in three spellings) are booleans — `yes`/`on` are strings, which callers turn into a
//! helpful error where a boolean is expected. Quoted scalars are always strings. A scalar read
//! into a string field yields its text as written. Duplicate keys are an error. Merge keys
//! (`<<`) are ordinary keys. Tags other than the core ones (`!!str`, `!!int`, …) are refused
//! where a typed value is read.
//!
//! # Errors
//! An [`Error`] carries the 1-based line and column and the path of the field (`a.b[0].c`)
//! where it happened. Messages from serde can quote values (`invalid type: string "…"`), so a
//! caller that may hold a secret redacts them or shows only the position.

use granit_parser::{Event, Marker, Parser, ScalarStyle, ScanError, Tag};
use serde::de::{self, DeserializeOwned, DeserializeSeed, IntoDeserializer, Visitor};
use std::collections::HashSet;
use std::fmt;

/// Deepest nesting of collections. Real configs nest 5-8 levels (a cloud-config `write_files`
/// entry, a KubeletConfiguration); `serde_yaml` allowed 128.
pub const MAX_DEPTH: usize = 64;
/// Most nodes (scalars and collections, each alias expansion counted again) in one input. A
/// kubeadm JoinConfiguration has ~40, a large cloud-config a few thousand.
pub const MAX_NODES: usize = 100_000;
/// Most documents in one stream. A config file has a handful.
pub const MAX_DOCUMENTS: usize = 1_000;

/// A position in the input, 1-based.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Location {
    pub line: usize,
    pub column: usize,
}

impl Location {
    fn of(m: &Marker) -> Self {
        Location {
            line: m.line(),
            column: m.col() + 1,
        }
    }
}

/// What went wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ErrorKind {
    /// Not YAML: the parser's message.
    Syntax(String),
    /// Over a budget of the table in the module docs.
    Limit { what: &'static str, limit: usize },
    /// The same key twice in one mapping.
    DuplicateKey(String),
    /// A field the target type does not have; `expected` are the ones it has.
    UnknownField {
        field: String,
        expected: &'static [&'static str],
    },
    /// A value of the wrong type or shape (serde's text: `invalid type: …, expected …`).
    Message(String),
}

/// A YAML input that cannot be read (see the module docs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error {
    location: Option<Location>,
    path: String,
    kind: ErrorKind,
}

impl Error {
    fn new(kind: ErrorKind, location: Option<Location>) -> Self {
        Error {
            location,
            path: String::new(),
            kind,
        }
    }

    fn limit(what: &'static str, limit: usize, at: Option<Location>) -> Self {
        Error::new(ErrorKind::Limit { what, limit }, at)
    }

    /// Where in the input, when known.
    pub fn location(&self) -> Option<Location> {
        self.location
    }

    /// The field path (`discovery.bootstrapToken.token`, `taints[0].key`); empty at the top.
    pub fn path(&self) -> &str {
        &self.path
    }

    pub fn kind(&self) -> &ErrorKind {
        &self.kind
    }

    /// `[path: ]what`, without the position (see [`Error::location`]).
    pub fn message(&self) -> String {
        let what = match &self.kind {
            ErrorKind::Syntax(m) | ErrorKind::Message(m) => m.clone(),
            ErrorKind::Limit { what, limit } => {
                format!("the YAML exceeds the limit of {limit} {what}")
            }
            ErrorKind::DuplicateKey(k) => format!("duplicate key {k:?}"),
            ErrorKind::UnknownField { field, expected } => {
                let known: Vec<String> = expected.iter().map(|f| format!("`{f}`")).collect();
                format!(
                    "unknown field `{field}`, expected one of {}",
                    known.join(", ")
                )
            }
        };
        if self.path.is_empty() {
            what
        } else {
            format!("{}: {what}", self.path)
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message())?;
        if let Some(l) = self.location {
            write!(f, " at line {} column {}", l.line, l.column)?;
        }
        Ok(())
    }
}

impl std::error::Error for Error {}

impl de::Error for Error {
    fn custom<T: fmt::Display>(msg: T) -> Self {
        Error::new(ErrorKind::Message(msg.to_string()), None)
    }

    fn unknown_field(field: &str, expected: &'static [&'static str]) -> Self {
        Error::new(
            ErrorKind::UnknownField {
                field: field.to_string(),
                expected,
            },
            None,
        )
    }
}

// ---------------------------------------------------------------------------------------------
// The tree
// ---------------------------------------------------------------------------------------------

/// One node of a document, with where it starts.
#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    pub value: Value,
    pub location: Location,
}

/// What a node holds. Mappings keep their order.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Scalar(Scalar),
    Sequence(Vec<Node>),
    Mapping(Vec<(Node, Node)>),
}

/// A scalar as written. Only a plain scalar (or one tagged with a core type) is resolved to a
/// null, boolean or number; quoted ones are strings.
#[derive(Debug, Clone, PartialEq)]
pub struct Scalar {
    pub text: String,
    /// Plain (unquoted, not a block scalar) and not tagged `!!str`.
    pub plain: bool,
    /// A tag that is not one of the core schema's (`!Ref`, `!!binary`), as written.
    pub unsupported_tag: Option<String>,
}

/// A scalar's type under the YAML 1.2 core schema.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Resolved<'a> {
    Null,
    Bool(bool),
    Int(i64),
    UInt(u64),
    Float(f64),
    Str(&'a str),
}

impl Scalar {
    /// The core schema's reading of this scalar.
    pub fn resolve(&self) -> Resolved<'_> {
        let t = self.text.as_str();
        if !self.plain {
            return Resolved::Str(t);
        }
        match t {
            "" | "~" | "null" | "Null" | "NULL" => return Resolved::Null,
            "true" | "True" | "TRUE" => return Resolved::Bool(true),
            "false" | "False" | "FALSE" => return Resolved::Bool(false),
            ".inf" | ".Inf" | ".INF" | "+.inf" | "+.Inf" | "+.INF" => {
                return Resolved::Float(f64::INFINITY)
            }
            "-.inf" | "-.Inf" | "-.INF" => return Resolved::Float(f64::NEG_INFINITY),
            ".nan" | ".NaN" | ".NAN" => return Resolved::Float(f64::NAN),
            _ => {}
        }
        let radix = |digits: &str, radix: u32, ok: fn(&u8) -> bool| {
            if !digits.is_empty() && digits.as_bytes().iter().all(ok) {
                u64::from_str_radix(digits, radix).ok()
            } else {
                None
            }
        };
        if let Some(h) = t.strip_prefix("0x") {
            if let Some(v) = radix(h, 16, u8::is_ascii_hexdigit) {
                return int(v, false);
            }
        }
        if let Some(o) = t.strip_prefix("0o") {
            if let Some(v) = radix(o, 8, |b| (b'0'..=b'7').contains(b)) {
                return int(v, false);
            }
        }
        let (neg, digits) = match t.as_bytes().first() {
            Some(b'-') => (true, &t[1..]),
            Some(b'+') => (false, &t[1..]),
            _ => (false, t),
        };
        if let Some(v) = radix(digits, 10, u8::is_ascii_digit) {
            return int(v, neg);
        }
        if is_core_float(digits) {
            if let Ok(f) = t.parse::<f64>() {
                return Resolved::Float(f);
            }
        }
        Resolved::Str(t)
    }

    /// The text, or `None` for a null.
    pub fn text(&self) -> Option<&str> {
        match self.resolve() {
            Resolved::Null => None,
            _ => Some(&self.text),
        }
    }
}

fn int(v: u64, negative: bool) -> Resolved<'static> {
    if !negative {
        return Resolved::UInt(v);
    }
    match i64::try_from(v) {
        Ok(i) => Resolved::Int(-i),
        Err(_) if v == 1 << 63 => Resolved::Int(i64::MIN),
        Err(_) => Resolved::Float(-(v as f64)),
    }
}

/// `(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?` (the sign is already stripped).
fn is_core_float(s: &str) -> bool {
    let (mantissa, exp) = match s.find(['e', 'E']) {
        Some(i) => (&s[..i], Some(&s[i + 1..])),
        None => (s, None),
    };
    let digits = |d: &str| !d.is_empty() && d.bytes().all(|b| b.is_ascii_digit());
    let mantissa_ok = match mantissa.split_once('.') {
        Some(("", frac)) => digits(frac),
        Some((int, frac)) => digits(int) && (frac.is_empty() || digits(frac)),
        None => digits(mantissa),
    };
    let exp_ok = match exp {
        None => true,
        Some(e) => digits(e.strip_prefix(['-', '+']).unwrap_or(e)),
    };
    mantissa_ok && exp_ok
}

impl Node {
    fn null(location: Location) -> Self {
        Node {
            value: Value::Scalar(Scalar {
                text: String::new(),
                plain: true,
                unsupported_tag: None,
            }),
            location,
        }
    }

    /// A scalar that resolves to null (an empty document, `~`, `null`).
    pub fn is_null(&self) -> bool {
        matches!(&self.value, Value::Scalar(s) if s.resolve() == Resolved::Null)
    }

    pub fn as_scalar(&self) -> Option<&Scalar> {
        match &self.value {
            Value::Scalar(s) => Some(s),
            _ => None,
        }
    }

    /// A string scalar's text (not a null, boolean or number).
    pub fn as_str(&self) -> Option<&str> {
        match self.as_scalar()?.resolve() {
            Resolved::Str(s) => Some(s),
            _ => None,
        }
    }

    pub fn as_mapping(&self) -> Option<&[(Node, Node)]> {
        match &self.value {
            Value::Mapping(m) => Some(m),
            _ => None,
        }
    }

    /// The value of the first entry whose key is the string `key`.
    pub fn get(&self, key: &str) -> Option<&Node> {
        self.as_mapping()?
            .iter()
            .find(|(k, _)| k.as_str() == Some(key))
            .map(|(_, v)| v)
    }

    fn size(&self) -> usize {
        1 + match &self.value {
            Value::Scalar(_) => 0,
            Value::Sequence(items) => items.iter().map(Node::size).sum(),
            Value::Mapping(m) => m.iter().map(|(k, v)| k.size() + v.size()).sum(),
        }
    }
}

/// Writes the node back as data (for re-encoding a subtree as JSON): scalars as the core
/// schema reads them.
impl serde::Serialize for Node {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::{SerializeMap, SerializeSeq};
        match &self.value {
            Value::Scalar(sc) => match sc.resolve() {
                Resolved::Null => s.serialize_unit(),
                Resolved::Bool(b) => s.serialize_bool(b),
                Resolved::Int(i) => s.serialize_i64(i),
                Resolved::UInt(u) => s.serialize_u64(u),
                Resolved::Float(f) => s.serialize_f64(f),
                Resolved::Str(t) => s.serialize_str(t),
            },
            Value::Sequence(items) => {
                let mut seq = s.serialize_seq(Some(items.len()))?;
                for i in items {
                    seq.serialize_element(i)?;
                }
                seq.end()
            }
            Value::Mapping(entries) => {
                let mut map = s.serialize_map(Some(entries.len()))?;
                for (k, v) in entries {
                    map.serialize_entry(k, v)?;
                }
                map.end()
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Events -> tree, within the budgets
// ---------------------------------------------------------------------------------------------

enum Frame {
    Seq(Vec<Node>, Location, usize),
    Map(Vec<(Node, Node)>, Option<Node>, Location, usize),
}

fn syntax(e: &ScanError) -> Error {
    let at = Some(Location::of(e.marker()));
    if matches!(e.kind(), granit_parser::ErrorKind::RecursionLimitExceeded) {
        return Error::limit("levels of nesting", MAX_DEPTH, at);
    }
    Error::new(ErrorKind::Syntax(e.info()), at)
}

/// The tag's effect: `Some(true)` forces a string, `Some(false)` keeps core resolution,
/// `Err(text)` is a tag kubejoin does not read.
fn tag_effect(tag: Option<&Tag>) -> Result<Option<bool>, String> {
    let Some(tag) = tag else { return Ok(None) };
    match tag.core_suffix() {
        Some("str") => Ok(Some(true)),
        Some("int" | "float" | "bool" | "null" | "seq" | "map") => Ok(Some(false)),
        _ => Err(tag.original()),
    }
}

/// Every document of a stream, in order; an empty document is a null node. Refuses input over
/// a budget (module docs).
pub fn documents(text: &str) -> Result<Vec<Node>, Error> {
    let options = granit_parser::options! {
        flow_nesting_limit: MAX_DEPTH,
        block_nesting_limit: MAX_DEPTH,
    };
    let mut parser = Parser::new_from_str_with_options(text, options);
    let mut docs = Vec::new();
    let mut stack: Vec<Frame> = Vec::new();
    // Completed anchored nodes, by the parser's anchor id (ids are unique in a stream).
    let mut anchors: Vec<Option<Node>> = Vec::new();
    let mut nodes = 0usize;
    let mut doc_start = Location { line: 1, column: 1 };
    let mut root: Option<Node> = None;
    while let Some(next) = parser.next_event() {
        let (event, span) = next.map_err(|e| syntax(&e))?;
        let at = Location::of(&span.start);
        let mut done: Option<(Node, usize)> = None;
        match event {
            Event::StreamStart | Event::StreamEnd | Event::Anchor(..) => {}
            Event::DocumentStart(..) => {
                if docs.len() >= MAX_DOCUMENTS {
                    return Err(Error::limit("documents", MAX_DOCUMENTS, Some(at)));
                }
                doc_start = at;
                root = None;
            }
            Event::DocumentEnd => {
                docs.push(root.take().unwrap_or_else(|| Node::null(doc_start)));
                anchors.clear();
            }
            Event::Alias(id) => {
                let Some(Some(target)) = anchors.get(id) else {
                    return Err(Error::new(
                        ErrorKind::Syntax("alias to an unknown or unfinished anchor".into()),
                        Some(at),
                    ));
                };
                let size = target.size();
                if nodes + size > MAX_NODES {
                    return Err(Error::limit("nodes", MAX_NODES, Some(at)));
                }
                nodes += size;
                let mut copy = target.clone();
                copy.location = at;
                done = Some((copy, 0));
            }
            Event::Scalar(value, style, anchor, tag) => {
                nodes += 1;
                let effect = tag_effect(tag.as_deref());
                let plain = style == ScalarStyle::Plain && effect != Ok(Some(true));
                let node = Node {
                    value: Value::Scalar(Scalar {
                        text: value.into_owned(),
                        plain,
                        unsupported_tag: effect.err(),
                    }),
                    location: at,
                };
                done = Some((node, anchor));
            }
            Event::SequenceStart(_, anchor, _) => {
                nodes += 1;
                stack.push(Frame::Seq(Vec::new(), at, anchor));
            }
            Event::MappingStart(_, anchor, _) => {
                nodes += 1;
                stack.push(Frame::Map(Vec::new(), None, at, anchor));
            }
            Event::SequenceEnd => {
                if let Some(Frame::Seq(items, loc, anchor)) = stack.pop() {
                    done = Some((
                        Node {
                            value: Value::Sequence(items),
                            location: loc,
                        },
                        anchor,
                    ));
                }
            }
            Event::MappingEnd => {
                if let Some(Frame::Map(entries, _, loc, anchor)) = stack.pop() {
                    let mut seen = HashSet::new();
                    for (k, _) in &entries {
                        if let Some(s) = k.as_scalar() {
                            if !seen.insert(s.text.as_str()) {
                                return Err(Error::new(
                                    ErrorKind::DuplicateKey(s.text.clone()),
                                    Some(k.location),
                                ));
                            }
                        }
                    }
                    done = Some((
                        Node {
                            value: Value::Mapping(entries),
                            location: loc,
                        },
                        anchor,
                    ));
                }
            }
            // Comments and anything newer carry no data.
            #[allow(unreachable_patterns)]
            _ => {}
        }
        if nodes > MAX_NODES {
            return Err(Error::limit("nodes", MAX_NODES, Some(at)));
        }
        if stack.len() > MAX_DEPTH {
            return Err(Error::limit("levels of nesting", MAX_DEPTH, Some(at)));
        }
        let Some((node, anchor)) = done else { continue };
        if anchor != 0 {
            if anchors.len() <= anchor {
                anchors.resize(anchor + 1, None);
            }
            anchors[anchor] = Some(node.clone());
        }
        match stack.last_mut() {
            None => root = Some(node),
            Some(Frame::Seq(items, ..)) => items.push(node),
            Some(Frame::Map(entries, key, ..)) => match key.take() {
                None => *key = Some(node),
                Some(k) => entries.push((k, node)),
            },
        }
    }
    Ok(docs)
}

/// The one document of `text` (none: a null document) as `T`.
pub fn from_str<T: DeserializeOwned>(text: &str) -> Result<T, Error> {
    let mut docs = documents(text)?;
    if docs.len() > 1 {
        let at = docs.get(1).map(|d| d.location);
        return Err(Error::new(
            ErrorKind::Syntax("expected one YAML document, found several".into()),
            at,
        ));
    }
    let node = docs
        .pop()
        .unwrap_or_else(|| Node::null(Location { line: 1, column: 1 }));
    from_node(&node)
}

/// Reads a node as `T`; errors carry the position and field path.
pub fn from_node<T: DeserializeOwned>(node: &Node) -> Result<T, Error> {
    T::deserialize(De {
        node,
        path: &Path::Root,
    })
}

// ---------------------------------------------------------------------------------------------
// serde
// ---------------------------------------------------------------------------------------------

#[derive(Clone, Copy)]
enum Path<'a> {
    Root,
    Key(&'a Path<'a>, &'a str),
    Index(&'a Path<'a>, usize),
}

impl fmt::Display for Path<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Path::Root => Ok(()),
            Path::Key(Path::Root, k) => f.write_str(k),
            Path::Key(parent, k) => write!(f, "{parent}.{k}"),
            Path::Index(parent, i) => write!(f, "{parent}[{i}]"),
        }
    }
}

struct De<'n, 'p> {
    node: &'n Node,
    path: &'p Path<'p>,
}

impl De<'_, '_> {
    /// Gives an error from a visitor the position and path of this node (the innermost one
    /// that failed keeps its own).
    fn at<T>(&self, r: Result<T, Error>) -> Result<T, Error> {
        r.map_err(|mut e| {
            if e.location.is_none() {
                e.location = Some(self.node.location);
                e.path = self.path.to_string();
            }
            e
        })
    }

    fn scalar(&self) -> Result<Option<&Scalar>, Error> {
        match &self.node.value {
            Value::Scalar(s) => match &s.unsupported_tag {
                Some(tag) => self.at(Err(de::Error::custom(format_args!(
                    "the YAML tag {tag} is not supported here"
                )))),
                None => Ok(Some(s)),
            },
            _ => Ok(None),
        }
    }
}

impl<'de> de::Deserializer<'de> for De<'_, '_> {
    type Error = Error;

    fn deserialize_any<V: Visitor<'de>>(self, v: V) -> Result<V::Value, Error> {
        let r = match &self.node.value {
            Value::Scalar(_) => match self.scalar()?.map(Scalar::resolve) {
                Some(Resolved::Null) | None => v.visit_unit(),
                Some(Resolved::Bool(b)) => v.visit_bool(b),
                Some(Resolved::Int(i)) => v.visit_i64(i),
                Some(Resolved::UInt(u)) => v.visit_u64(u),
                Some(Resolved::Float(f)) => v.visit_f64(f),
                Some(Resolved::Str(s)) => v.visit_str(s),
            },
            Value::Sequence(items) => v.visit_seq(Seq {
                items: items.iter(),
                index: 0,
                path: self.path,
            }),
            Value::Mapping(entries) => v.visit_map(Map {
                entries: entries.iter(),
                value: None,
                path: self.path,
            }),
        };
        self.at(r)
    }

    fn deserialize_str<V: Visitor<'de>>(self, v: V) -> Result<V::Value, Error> {
        match self.scalar()? {
            // Any scalar reads as its text into a string, as written.
            Some(s) => {
                let r = v.visit_str(&s.text);
                self.at(r)
            }
            None => self.deserialize_any(v),
        }
    }

    fn deserialize_string<V: Visitor<'de>>(self, v: V) -> Result<V::Value, Error> {
        self.deserialize_str(v)
    }

    fn deserialize_identifier<V: Visitor<'de>>(self, v: V) -> Result<V::Value, Error> {
        self.deserialize_str(v)
    }

    fn deserialize_option<V: Visitor<'de>>(self, v: V) -> Result<V::Value, Error> {
        if self.node.is_null() {
            let r = v.visit_none();
            self.at(r)
        } else {
            v.visit_some(self)
        }
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        v: V,
    ) -> Result<V::Value, Error> {
        v.visit_newtype_struct(self)
    }

    fn deserialize_ignored_any<V: Visitor<'de>>(self, v: V) -> Result<V::Value, Error> {
        v.visit_unit()
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _variants: &'static [&'static str],
        v: V,
    ) -> Result<V::Value, Error> {
        let r = match (&self.node.value, self.scalar()?) {
            (_, Some(s)) => v.visit_enum(s.text.as_str().into_deserializer()),
            (Value::Mapping(entries), _) if entries.len() == 1 => {
                let (k, val) = &entries[0];
                v.visit_enum(Enum {
                    key: k,
                    value: val,
                    path: self.path,
                })
            }
            _ => Err(de::Error::custom(
                "invalid type: expected a string or a mapping with one key",
            )),
        };
        self.at(r)
    }

    // A null where a collection is expected is an empty one (`items:`), as serde_yaml read it.
    fn deserialize_seq<V: Visitor<'de>>(self, v: V) -> Result<V::Value, Error> {
        if self.node.is_null() {
            let r = v.visit_seq(Seq {
                items: [].iter(),
                index: 0,
                path: self.path,
            });
            return self.at(r);
        }
        self.deserialize_any(v)
    }

    fn deserialize_map<V: Visitor<'de>>(self, v: V) -> Result<V::Value, Error> {
        if self.node.is_null() {
            let r = v.visit_map(Map {
                entries: [].iter(),
                value: None,
                path: self.path,
            });
            return self.at(r);
        }
        self.deserialize_any(v)
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _fields: &'static [&'static str],
        v: V,
    ) -> Result<V::Value, Error> {
        self.deserialize_map(v)
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char bytes byte_buf unit
        unit_struct tuple tuple_struct
    }
}

struct Seq<'n, 'p> {
    items: std::slice::Iter<'n, Node>,
    index: usize,
    path: &'p Path<'p>,
}

impl<'de> de::SeqAccess<'de> for Seq<'_, '_> {
    type Error = Error;

    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, Error> {
        let Some(node) = self.items.next() else {
            return Ok(None);
        };
        let path = Path::Index(self.path, self.index);
        self.index += 1;
        seed.deserialize(De { node, path: &path }).map(Some)
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.items.len())
    }
}

struct Map<'n, 'p> {
    entries: std::slice::Iter<'n, (Node, Node)>,
    value: Option<&'n (Node, Node)>,
    path: &'p Path<'p>,
}

fn key_text(k: &Node) -> &str {
    k.as_scalar().map_or("?", |s| s.text.as_str())
}

impl<'de> de::MapAccess<'de> for Map<'_, '_> {
    type Error = Error;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, Error> {
        let Some(entry) = self.entries.next() else {
            return Ok(None);
        };
        self.value = Some(entry);
        // An unknown field is reported at its key, with the key in the path.
        let path = Path::Key(self.path, key_text(&entry.0));
        seed.deserialize(De {
            node: &entry.0,
            path: &path,
        })
        .map(Some)
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, Error> {
        let Some((k, node)) = self.value.take() else {
            return Err(de::Error::custom("a mapping value was read before its key"));
        };
        let path = Path::Key(self.path, key_text(k));
        seed.deserialize(De { node, path: &path })
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.entries.len())
    }
}

struct Enum<'n, 'p> {
    key: &'n Node,
    value: &'n Node,
    path: &'p Path<'p>,
}

impl<'de, 'n, 'p> de::EnumAccess<'de> for Enum<'n, 'p> {
    type Error = Error;
    type Variant = De<'n, 'p>;

    fn variant_seed<S: DeserializeSeed<'de>>(
        self,
        seed: S,
    ) -> Result<(S::Value, De<'n, 'p>), Error> {
        let v = seed.deserialize(De {
            node: self.key,
            path: self.path,
        })?;
        Ok((
            v,
            De {
                node: self.value,
                path: self.path,
            },
        ))
    }
}

impl<'de> de::VariantAccess<'de> for De<'_, '_> {
    type Error = Error;

    fn unit_variant(self) -> Result<(), Error> {
        de::Deserialize::deserialize(self)
    }

    fn newtype_variant_seed<S: DeserializeSeed<'de>>(self, seed: S) -> Result<S::Value, Error> {
        seed.deserialize(self)
    }

    fn tuple_variant<V: Visitor<'de>>(self, _len: usize, v: V) -> Result<V::Value, Error> {
        de::Deserializer::deserialize_seq(self, v)
    }

    fn struct_variant<V: Visitor<'de>>(
        self,
        _fields: &'static [&'static str],
        v: V,
    ) -> Result<V::Value, Error> {
        de::Deserializer::deserialize_map(self, v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;
    use std::collections::BTreeMap;

    #[derive(Debug, Deserialize, PartialEq)]
    #[serde(deny_unknown_fields, rename_all = "camelCase")]
    struct Outer {
        #[serde(default)]
        name: Option<String>,
        #[serde(default)]
        flag: Option<bool>,
        #[serde(default)]
        count: Option<u32>,
        #[serde(default)]
        inner: Option<Inner>,
        #[serde(default)]
        items: Option<Vec<Inner>>,
        #[serde(default)]
        map: Option<BTreeMap<String, String>>,
    }

    #[derive(Debug, Deserialize, PartialEq)]
    #[serde(deny_unknown_fields)]
    struct Inner {
        key: String,
    }

    fn err<T: DeserializeOwned + fmt::Debug>(text: &str) -> Error {
        from_str::<T>(text).unwrap_err()
    }

    #[test]
    fn reads_typed_values_with_the_core_schema() {
        let o: Outer = from_str(
            "name: 0x1F\nflag: true\ncount: 0x10\ninner: {key: \"k\"}\nitems:\n- key: a\n- key: 7\nmap: {a: 1, b: ~x}\n",
        )
        .unwrap();
        assert_eq!(o.name.as_deref(), Some("0x1F"));
        assert_eq!(o.flag, Some(true));
        assert_eq!(o.count, Some(16));
        assert_eq!(o.items.unwrap()[1].key, "7");
        assert_eq!(o.map.unwrap()["b"], "~x");
        let o: Outer = from_str("name:\nflag: ~\ninner: null\n").unwrap();
        assert_eq!((o.name, o.flag, o.inner), (None, None, None));
        let o: Outer = from_str("").unwrap();
        assert_eq!(o.name, None);
        let o: Outer = from_str("name: !!str 12\n").unwrap();
        assert_eq!(o.name.as_deref(), Some("12"));
    }

    #[test]
    fn errors_name_the_field_path_and_position() {
        let e = err::<Outer>("inner:\n  kee: x\n");
        assert_eq!(e.path(), "inner.kee");
        assert_eq!(e.location(), Some(Location { line: 2, column: 3 }));
        assert_eq!(
            e.kind(),
            &ErrorKind::UnknownField {
                field: "kee".into(),
                expected: &["key"]
            }
        );
        let e = err::<Outer>("items:\n- key: a\n- {key: b, x: 1}\n");
        assert_eq!(e.path(), "items[1].x");
        let e = err::<Outer>("flag: yes\n");
        assert_eq!(e.path(), "flag");
        assert_eq!(
            e.to_string(),
            "flag: invalid type: string \"yes\", expected a boolean at line 1 column 7"
        );
        let e = err::<Outer>("count: [1]\n");
        assert!(
            e.message().starts_with("count: invalid type: sequence"),
            "{e}"
        );
        let e = err::<Outer>("inner: {}\n");
        assert_eq!(e.message(), "inner: missing field `key`");
        let e = err::<Outer>("name: !Ref x\n");
        assert!(e.message().contains("tag !Ref is not supported"), "{e}");
        let e = err::<Outer>("name: a\nname: b\n");
        assert_eq!(e.kind(), &ErrorKind::DuplicateKey("name".into()));
        assert_eq!(e.location(), Some(Location { line: 2, column: 1 }));
        let e = err::<Outer>("name: [a\n");
        assert!(matches!(e.kind(), ErrorKind::Syntax(_)), "{e:?}");
        assert!(e.location().is_some());
        let e = err::<Outer>("a: 1\n---\nb: 2\n");
        assert!(e.message().contains("several"), "{e}");
    }

    #[test]
    fn resolution_follows_yaml_1_2_core() {
        let r = |t: &str, want: Resolved<'_>| {
            let s = Scalar {
                text: t.into(),
                plain: true,
                unsupported_tag: None,
            };
            let got = s.resolve();
            // NaN aside, every case compares by value.
            assert_eq!(got, want, "{t}");
        };
        r("~", Resolved::Null);
        r("yes", Resolved::Str("yes"));
        r("-12", Resolved::Int(-12));
        r("+12", Resolved::UInt(12));
        r("0o17", Resolved::UInt(15));
        r("1.5e3", Resolved::Float(1500.0));
        r(".5", Resolved::Float(0.5));
        r("1.", Resolved::Float(1.0));
        r("1.2.3", Resolved::Str("1.2.3"));
        r("0x", Resolved::Str("0x"));
        r("e3", Resolved::Str("e3"));
        r("-.inf", Resolved::Float(f64::NEG_INFINITY));
        r("12:30", Resolved::Str("12:30"));
    }

    #[test]
    fn documents_keep_empty_ones_and_order() {
        let docs = documents("a: 1\n---\n---\n- x\n").unwrap();
        assert_eq!(docs.len(), 3);
        assert!(docs[1].is_null());
        assert_eq!(docs[2].location.line, 4);
        let m = documents("b: 1\na: 2\n").unwrap();
        let keys: Vec<&str> = m[0]
            .as_mapping()
            .unwrap()
            .iter()
            .filter_map(|(k, _)| k.as_str())
            .collect();
        assert_eq!(keys, ["b", "a"]);
        assert!(documents("").unwrap().is_empty());
    }

    #[test]
    fn anchors_expand_and_aliases_count_against_the_node_budget() {
        let d = documents("a: &x {k: v}\nb: *x\n").unwrap();
        assert_eq!(
            d[0].get("b")
                .and_then(|b| b.get("k"))
                .and_then(Node::as_str),
            Some("v")
        );
        let mut laughs = String::from("a: &a [l,l,l,l,l,l,l,l,l,l]\n");
        let mut prev = 'a';
        for n in 'b'..='j' {
            laughs.push_str(&format!("{n}: &{n} [*{prev},*{prev},*{prev},*{prev},*{prev},*{prev},*{prev},*{prev},*{prev},*{prev}]\n"));
            prev = n;
        }
        let e = documents(&laughs).unwrap_err();
        assert_eq!(
            e.kind(),
            &ErrorKind::Limit {
                what: "nodes",
                limit: MAX_NODES
            }
        );
        assert!(documents("a: *nope\n").is_err());
    }

    #[test]
    fn nesting_is_refused_past_the_limit() {
        let deep = |open: &str| open.repeat(MAX_DEPTH + 1);
        for text in [deep("["), deep("{"), format!("{}x\n", deep("- "))] {
            let e = documents(&text).unwrap_err();
            assert_eq!(
                e.kind(),
                &ErrorKind::Limit {
                    what: "levels of nesting",
                    limit: MAX_DEPTH
                },
                "{text}"
            );
            assert!(
                e.to_string().contains("limit of 64 levels of nesting"),
                "{e}"
            );
        }
        let ok = format!("{}{}", "[".repeat(MAX_DEPTH - 1), "]".repeat(MAX_DEPTH - 1));
        assert!(documents(&ok).is_ok());
        let storm = "---\n".repeat(MAX_DOCUMENTS + 1);
        assert!(matches!(
            documents(&storm).unwrap_err().kind(),
            ErrorKind::Limit {
                what: "documents",
                ..
            }
        ));
    }

    #[test]
    fn serializes_to_json_in_order() {
        let d = documents("b: [1, x, ~, true]\na: \"2\"\n").unwrap();
        assert_eq!(
            serde_json::to_string(&d[0]).unwrap(),
            r#"{"b":[1,"x",null,true],"a":"2"}"#
        );
    }
}
