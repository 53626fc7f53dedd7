//! Applying compiled hooks to an inquiry. A [`PluginSet`] is an immutable, ordered list of steps built
//! once from compiled plugins; [`PluginSet::apply`] runs them in two phases: every enriching op (`set`,
//! `copy`, `move`/`rename`, `append`, `lookup`) first, then every redacting op (`remove`, `mask`, `hash`,
//! `truncate`), each phase ordered by priority, file name, then order in the file. That order is what
//! guarantees no enrichment can bring back a value a redaction took out.
//!
//! Conditions are evaluated once, on the inquiry as stored, before any op runs, so an enrichment cannot
//! switch a redaction off. Redactions never fail open: a value of an unexpected type is still replaced
//! (see [`mask_value`], [`hash_value`], [`truncate_value`]). Nothing here can panic on any input, and
//! growth is bounded: every value an enrichment writes is charged to a per-request budget, and writes
//! that would nest deeper than [`MAX_DEPTH`] are skipped, so the response always serializes and parses.

use std::cmp::Ordering;
use std::collections::BTreeSet;
use std::sync::Arc;

use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use super::Caller;
use super::compiled::{
    CompiledOp, CompiledPlugin, CompiledTest, CompiledWhen, Piece, Pointer, Seg, ValueSource,
};
use super::format::{Bound, CallerCondition};

/// Deepest nesting (inside the inquiry) an enrichment may create; serde_json, like most parsers,
/// refuses documents nested deeper than 128.
pub const MAX_DEPTH: usize = 100;
/// Units (JSON nodes plus string bytes) enrichments may write per request, over all hooks.
pub const WRITE_BUDGET: usize = 8 * 1024 * 1024;
/// Longest rendered template, in bytes; longer output is cut at a character boundary.
pub const MAX_TEMPLATE_BYTES: usize = 64 * 1024;
/// Characters a masked object or array becomes (its size is not revealed).
pub const MASKED_CONTAINER_CHARS: usize = 8;

#[derive(Debug, Clone, Copy)]
struct Step {
    plugin: u32,
    hook: u32,
    op: u32,
    /// Index into the flat list of hooks, for the condition verdict.
    flat_hook: u32,
}

/// An immutable, compiled set of enabled plugins, ready to apply. Cheap to share (`Send + Sync`).
#[derive(Debug, Default)]
pub struct PluginSet {
    plugins: Vec<Arc<CompiledPlugin>>,
    /// (plugin, hook) for each flat hook index.
    hooks: Vec<(u32, u32)>,
    enrich: Vec<Step>,
    redact: Vec<Step>,
    /// Whether some template reads `${now}`: only then can two applications to the same inquiry
    /// by the same caller differ.
    time_dependent: bool,
    /// The inquiry's top-level members some hook reads or writes; `None` when one reaches the
    /// whole document (the root pointer, or `*` first). See [`PluginSet::members`].
    members: Option<BTreeSet<String>>,
}

impl PluginSet {
    /// This set with `draft` in place of the plugin of the same file (or added beside the others):
    /// what the set would be once the draft is saved. A disabled draft takes its file out.
    pub fn with_draft(&self, draft: Arc<CompiledPlugin>) -> Self {
        let mut plugins: Vec<_> = self
            .plugins
            .iter()
            .filter(|p| p.file != draft.file)
            .cloned()
            .collect();
        plugins.push(draft);
        PluginSet::from_plugins(plugins)
    }

    /// The files of the plugins (enabled or not) whose conditions name `role`.
    pub fn files_naming_role(&self, role: &str) -> Vec<String> {
        self.plugins
            .iter()
            .filter(|p| p.names_role(role))
            .map(|p| p.file.clone())
            .collect()
    }

    /// A set with no hooks.
    pub fn empty() -> Self {
        PluginSet::default()
    }

    /// Builds a set from compiled plugins; disabled ones are left out. Order is priority, then file name.
    pub fn from_plugins(plugins: impl IntoIterator<Item = Arc<CompiledPlugin>>) -> Self {
        let mut plugins: Vec<_> = plugins.into_iter().filter(|p| p.enabled).collect();
        plugins.sort_by(|a, b| {
            a.priority
                .cmp(&b.priority)
                .then_with(|| a.file.cmp(&b.file))
        });
        let mut set = PluginSet {
            plugins,
            members: Some(BTreeSet::new()),
            ..PluginSet::default()
        };
        for (pi, plugin) in set.plugins.iter().enumerate() {
            for (hi, hook) in plugin.hooks.iter().enumerate() {
                // a hook without operations can change nothing: its conditions need not run
                if hook.ops.is_empty() {
                    continue;
                }
                let flat_hook = set.hooks.len() as u32;
                set.hooks.push((pi as u32, hi as u32));
                for (oi, op) in hook.ops.iter().enumerate() {
                    let step = Step {
                        plugin: pi as u32,
                        hook: hi as u32,
                        op: oi as u32,
                        flat_hook,
                    };
                    if let CompiledOp::Set { value, .. } | CompiledOp::Append { value, .. } = op
                        && let ValueSource::Template(pieces) = value
                        && pieces.iter().any(|p| matches!(p, Piece::Now))
                    {
                        set.time_dependent = true;
                    }
                    if op.is_redaction() {
                        set.redact.push(step);
                    } else {
                        set.enrich.push(step);
                    }
                    op_members(op, &mut set.members);
                }
                if let Some(when) = &hook.when {
                    when_members(when, &mut set.members);
                }
            }
        }
        set
    }

    /// The inquiry's top-level members that any hook reads (conditions, templates, sources) or
    /// writes, or `None` when some pointer reaches the whole document. No hook can observe or
    /// change any other member, so a renderer may leave those as they were stored, unparsed, at
    /// their place: the result is the one [`PluginSet::apply`] gives on the whole document.
    pub fn members(&self) -> Option<&BTreeSet<String>> {
        self.members.as_ref()
    }

    /// True when no enabled op exists: the caller may then serve stored bytes untouched.
    pub fn is_empty(&self) -> bool {
        self.enrich.is_empty() && self.redact.is_empty()
    }

    /// Whether the output can change with the clock (a `${now}` template), so that the same
    /// inquiry, caller and set may render differently from one request to the next.
    pub fn is_time_dependent(&self) -> bool {
        self.time_dependent
    }

    /// Number of enabled plugins in the set.
    pub fn plugin_count(&self) -> usize {
        self.plugins.len()
    }

    /// Number of hooks of enabled plugins in the set (hooks without operations are left out).
    pub fn hook_count(&self) -> usize {
        self.hooks.len()
    }

    /// File names of the enabled plugins, in the order they run.
    pub fn files(&self) -> Vec<&str> {
        self.plugins.iter().map(|p| p.file.as_str()).collect()
    }

    fn op(&self, step: Step) -> Option<&CompiledOp> {
        self.plugins
            .get(step.plugin as usize)?
            .hooks
            .get(step.hook as usize)?
            .ops
            .get(step.op as usize)
    }

    /// Applies the hooks to a stored document (the text of a JSON object) and writes the result
    /// as compact JSON to `out`. Only the top-level members some hook reads or writes are parsed
    /// ([`PluginSet::members`]); the others are copied as stored, in their place, so a render
    /// costs little more than the members the hooks touch. Fails only on text that is not JSON.
    pub fn render(
        &self,
        doc: &str,
        caller: &Caller<'_>,
        out: &mut Vec<u8>,
    ) -> Result<(), serde_json::Error> {
        if let Some(members) = &self.members
            && self.render_members(doc, members, caller, out)?
        {
            return Ok(());
        }
        let mut inquiry: Value = serde_json::from_str(doc)?;
        self.apply(&mut inquiry, caller);
        serde_json::to_writer(out, &inquiry)
    }

    /// [`PluginSet::render`] parsing only `members`. Returns false, having written nothing, when
    /// `doc` is not an object or the hooks made it something else.
    ///
    /// The order of the result is the one a whole document would get: members stay where they
    /// are unless a hook takes one out (it is gone, or put back at the end, as serde_json's map
    /// does). So the touched members are followed by a marker before the hooks run: after them,
    /// those still before the marker were never taken out and are written in their stored place;
    /// those after it were (re)inserted, in that order, and go at the end.
    fn render_members(
        &self,
        doc: &str,
        members: &BTreeSet<String>,
        caller: &Caller<'_>,
        out: &mut Vec<u8>,
    ) -> Result<bool, serde_json::Error> {
        const END: &str = "\u{0}end of the stored members";
        let Ok(StoredMembers(stored)) = serde_json::from_str::<StoredMembers>(doc) else {
            return Ok(false);
        };
        if members.contains(END) {
            return Ok(false);
        }
        let mut object = Map::new();
        for (key, raw) in &stored {
            if members.contains(key.as_ref()) {
                object.insert(key.to_string(), serde_json::from_str(raw.get())?);
            }
        }
        object.insert(END.to_owned(), Value::Null);
        let mut inquiry = Value::Object(object);
        self.apply(&mut inquiry, caller);
        let Value::Object(object) = &inquiry else {
            return Ok(false);
        };
        let mut entries = object.iter();
        let kept: Vec<_> = entries.by_ref().take_while(|(k, _)| *k != END).collect();
        let mut first = true;
        let mut member = |out: &mut Vec<u8>, key: &str| -> Result<(), serde_json::Error> {
            out.push(if first { b'{' } else { b',' });
            first = false;
            serde_json::to_writer(&mut *out, key)?;
            out.push(b':');
            Ok(())
        };
        for (key, raw) in &stored {
            if !members.contains(key.as_ref()) {
                member(out, key)?;
                out.extend_from_slice(raw.get().as_bytes());
            } else if let Some((_, value)) = kept.iter().find(|(k, _)| k.as_str() == key) {
                member(out, key)?;
                serde_json::to_writer(&mut *out, value)?;
            }
        }
        for (key, value) in entries {
            member(out, key)?;
            serde_json::to_writer(&mut *out, value)?;
        }
        if first {
            out.push(b'{');
        }
        out.push(b'}');
        Ok(true)
    }

    /// Runs every hook on `inquiry`: enrichments, then redactions. Never panics, never loops.
    pub fn apply(&self, inquiry: &mut Value, caller: &Caller<'_>) {
        if self.is_empty() {
            return;
        }
        let verdicts: Vec<bool> = self
            .hooks
            .iter()
            .map(|&(p, h)| {
                self.plugins
                    .get(p as usize)
                    .and_then(|pl| pl.hooks.get(h as usize))
                    .is_some_and(|hook| {
                        hook.when
                            .as_ref()
                            .is_none_or(|w| eval_when(w, inquiry, caller))
                    })
            })
            .collect();
        let mut budget = WRITE_BUDGET;
        for &step in &self.enrich {
            if verdicts.get(step.flat_hook as usize) == Some(&true)
                && let Some(op) = self.op(step)
            {
                enrich(op, inquiry, caller, &mut budget);
            }
        }
        for &step in &self.redact {
            if verdicts.get(step.flat_hook as usize) == Some(&true)
                && let Some(op) = self.op(step)
            {
                redact(op, inquiry);
            }
        }
    }
}

/// A stored object's members in order, their values unparsed and their names borrowed unless
/// escaped. A repeated name keeps its first place and its last value, as serde_json's map does.
struct StoredMembers<'a>(Vec<(std::borrow::Cow<'a, str>, &'a serde_json::value::RawValue)>);

impl<'de> serde::Deserialize<'de> for StoredMembers<'de> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use std::borrow::Cow;
        struct Name<'a>(Cow<'a, str>);
        impl<'de> serde::Deserialize<'de> for Name<'de> {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                struct V;
                impl<'de> serde::de::Visitor<'de> for V {
                    type Value = Name<'de>;
                    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                        f.write_str("a member name")
                    }
                    fn visit_borrowed_str<E>(self, s: &'de str) -> Result<Name<'de>, E> {
                        Ok(Name(Cow::Borrowed(s)))
                    }
                    fn visit_str<E>(self, s: &str) -> Result<Name<'de>, E> {
                        Ok(Name(Cow::Owned(s.to_owned())))
                    }
                }
                d.deserialize_str(V)
            }
        }
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = StoredMembers<'de>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<StoredMembers<'de>, A::Error> {
                let mut members: Vec<(Cow<'de, str>, &'de serde_json::value::RawValue)> =
                    Vec::with_capacity(32);
                while let Some(Name(name)) = map.next_key()? {
                    let value = map.next_value()?;
                    match members.iter_mut().find(|(n, _)| *n == name) {
                        Some(slot) => slot.1 = value,
                        None => members.push((name, value)),
                    }
                }
                Ok(StoredMembers(members))
            }
        }
        d.deserialize_map(V)
    }
}

/// Adds the top-level member `pointer` starts at to `members`; the root or `*` makes it `None`.
fn pointer_member(pointer: &Pointer, members: &mut Option<BTreeSet<String>>) {
    match (pointer.segs.first(), members.as_mut()) {
        (Some(Seg::Key(k)), Some(set)) => {
            set.insert(k.clone());
        }
        _ => *members = None,
    }
}

fn op_members(op: &CompiledOp, members: &mut Option<BTreeSet<String>>) {
    let mut pointers = Vec::new();
    let mut source = None;
    match op {
        CompiledOp::Set { path, value } | CompiledOp::Append { path, value } => {
            pointers.push(path);
            source = Some(value);
        }
        CompiledOp::Copy { from, path } | CompiledOp::Move { from, path } => {
            pointers.extend([from, path]);
        }
        CompiledOp::Lookup { path, key, .. } => pointers.extend([path, key]),
        CompiledOp::Remove { path }
        | CompiledOp::Mask { path, .. }
        | CompiledOp::Hash { path }
        | CompiledOp::Truncate { path, .. } => pointers.push(path),
    }
    if let Some(ValueSource::Template(pieces)) = source {
        pointers.extend(pieces.iter().filter_map(|piece| match piece {
            Piece::Pointer(p) => Some(p),
            _ => None,
        }));
    }
    for p in pointers {
        pointer_member(p, members);
    }
}

fn when_members(when: &CompiledWhen, members: &mut Option<BTreeSet<String>>) {
    for test in &when.inquiry {
        pointer_member(&test.pointer, members);
    }
    for any in when.any.iter().flatten() {
        when_members(any, members);
    }
}

// ---------------------------------------------------------------------------------------------
// Conditions
// ---------------------------------------------------------------------------------------------

fn eval_when(when: &CompiledWhen, doc: &Value, caller: &Caller<'_>) -> bool {
    if let Some(c) = &when.caller
        && !eval_caller(c, caller)
    {
        return false;
    }
    if !when.inquiry.iter().all(|t| eval_test(t, doc)) {
        return false;
    }
    match &when.any {
        Some(list) => list.iter().any(|w| eval_when(w, doc, caller)),
        None => true,
    }
}

fn eval_caller(c: &CallerCondition, caller: &Caller<'_>) -> bool {
    let has_role = |r: &String| caller.roles.iter().any(|cr| cr == r);
    c.roles_any
        .as_ref()
        .is_none_or(|rs| rs.iter().any(has_role))
        && c.roles_all
            .as_ref()
            .is_none_or(|rs| rs.iter().all(has_role))
        && c.roles_none
            .as_ref()
            .is_none_or(|rs| !rs.iter().any(has_role))
        && c.permission
            .as_ref()
            .is_none_or(|p| (caller.has_permission)(p))
        && c.lacks_permission
            .as_ref()
            .is_none_or(|p| !(caller.has_permission)(p))
        && c.usernames
            .as_ref()
            .is_none_or(|us| us.iter().any(|u| u == caller.username))
}

fn eval_test(t: &CompiledTest, doc: &Value) -> bool {
    let has_value_test = t.equals.is_some()
        || t.in_.is_some()
        || t.matches.is_some()
        || t.gt.is_some()
        || t.lt.is_some();
    let mut found = false;
    let mut satisfied = false;
    visit(doc, &t.pointer.segs, &mut |v| {
        found = true;
        if has_value_test && value_passes(t, v) {
            satisfied = true;
            return true; // stop
        }
        !has_value_test // nothing more to learn once something exists
    });
    match t.exists {
        Some(false) => !found,
        Some(true) if !has_value_test => found,
        _ => satisfied,
    }
}

fn value_passes(t: &CompiledTest, v: &Value) -> bool {
    t.equals.as_ref().is_none_or(|e| json_eq(e, v))
        && t.in_
            .as_ref()
            .is_none_or(|list| list.iter().any(|e| json_eq(e, v)))
        && t.matches.as_ref().is_none_or(|re| match v {
            Value::String(s) => re.is_match(s),
            Value::Number(_) | Value::Bool(_) => re.is_match(&v.to_string()),
            _ => false,
        })
        && t.gt
            .as_ref()
            .is_none_or(|b| compare(v, b) == Some(Ordering::Greater))
        && t.lt
            .as_ref()
            .is_none_or(|b| compare(v, b) == Some(Ordering::Less))
}

/// Equality where numbers compare by value (`1 == 1.0`).
fn json_eq(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => match (x.as_f64(), y.as_f64()) {
            (Some(x), Some(y)) if x == y => true,
            _ => x == y,
        },
        _ => a == b,
    }
}

fn compare(v: &Value, b: &Bound) -> Option<Ordering> {
    match (v, b) {
        (Value::Number(n), Bound::Number(x)) => n.as_f64()?.partial_cmp(x),
        (Value::String(s), Bound::Text(x)) => Some(s.as_str().cmp(x.as_str())),
        _ => None,
    }
}

// ---------------------------------------------------------------------------------------------
// Walking
// ---------------------------------------------------------------------------------------------

fn array_index(token: &str) -> Option<usize> {
    // RFC 6901: digits, no leading zero except "0" itself
    if token.is_empty() || !token.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    if token.len() > 1 && token.starts_with('0') {
        return None;
    }
    token.parse().ok()
}

/// Calls `f` on every value matched by `segs`; `f` returns true to stop early. Returns true if stopped.
fn visit(v: &Value, segs: &[Seg], f: &mut dyn FnMut(&Value) -> bool) -> bool {
    let Some((first, rest)) = segs.split_first() else {
        return f(v);
    };
    match (first, v) {
        (Seg::Any, Value::Array(a)) => a.iter().any(|c| visit(c, rest, f)),
        (Seg::Any, Value::Object(m)) => m.values().any(|c| visit(c, rest, f)),
        (Seg::Key(k), Value::Object(m)) => m.get(k).is_some_and(|c| visit(c, rest, f)),
        (Seg::Key(k), Value::Array(a)) => array_index(k)
            .and_then(|i| a.get(i))
            .is_some_and(|c| visit(c, rest, f)),
        _ => false,
    }
}

/// Calls `f` on every value matched by `segs`, mutably. Recursion is bounded by the pointer length.
fn visit_mut(v: &mut Value, segs: &[Seg], f: &mut dyn FnMut(&mut Value)) {
    let Some((first, rest)) = segs.split_first() else {
        f(v);
        return;
    };
    match (first, v) {
        (Seg::Any, Value::Array(a)) => a.iter_mut().for_each(|c| visit_mut(c, rest, f)),
        (Seg::Any, Value::Object(m)) => m.values_mut().for_each(|c| visit_mut(c, rest, f)),
        (Seg::Key(k), Value::Object(m)) => {
            if let Some(c) = m.get_mut(k) {
                visit_mut(c, rest, f);
            }
        }
        (Seg::Key(k), Value::Array(a)) => {
            if let Some(c) = array_index(k).and_then(|i| a.get_mut(i)) {
                visit_mut(c, rest, f);
            }
        }
        _ => {}
    }
}

/// The single value at a wildcard-free pointer.
fn get<'v>(v: &'v Value, segs: &[Seg]) -> Option<&'v Value> {
    let mut cur = v;
    for seg in segs {
        cur = match (seg, cur) {
            (Seg::Key(k), Value::Object(m)) => m.get(k)?,
            (Seg::Key(k), Value::Array(a)) => a.get(array_index(k)?)?,
            _ => return None,
        };
    }
    Some(cur)
}

/// True when [`set_at`] would succeed: every existing step is a container that can be entered.
fn can_set(v: &Value, segs: &[Seg]) -> bool {
    let Some((last, parents)) = segs.split_last() else {
        return false;
    };
    let mut cur = v;
    for seg in parents {
        let next = match (seg, cur) {
            (Seg::Key(k), Value::Object(m)) => match m.get(k) {
                Some(c) => c,
                None => return true, // the rest is created
            },
            (Seg::Key(k), Value::Array(a)) => match array_index(k).and_then(|i| a.get(i)) {
                Some(c) => c,
                None => return false,
            },
            _ => return false,
        };
        cur = next;
    }
    match (last, cur) {
        (Seg::Key(_), Value::Object(_)) => true,
        (Seg::Key(k), Value::Array(a)) => k == "-" || array_index(k).is_some_and(|i| i <= a.len()),
        _ => false,
    }
}

/// Writes `value` at a wildcard-free pointer, creating missing intermediate objects. An existing
/// scalar in the way, or an array index out of range, makes it a no-op (returns false).
fn set_at(v: &mut Value, segs: &[Seg], value: Value) -> bool {
    let Some((last, parents)) = segs.split_last() else {
        return false;
    };
    let mut cur = v;
    for seg in parents {
        cur = match (seg, cur) {
            (Seg::Key(k), Value::Object(m)) => m
                .entry(k.clone())
                .or_insert_with(|| Value::Object(Map::new())),
            (Seg::Key(k), Value::Array(a)) => match array_index(k).and_then(|i| a.get_mut(i)) {
                Some(c) => c,
                None => return false,
            },
            _ => return false,
        };
    }
    match (last, cur) {
        (Seg::Key(k), Value::Object(m)) => {
            m.insert(k.clone(), value);
            true
        }
        (Seg::Key(k), Value::Array(a)) => {
            if k == "-" {
                a.push(value);
                return true;
            }
            match array_index(k) {
                Some(i) if i < a.len() => {
                    a[i] = value;
                    true
                }
                Some(i) if i == a.len() => {
                    a.push(value);
                    true
                }
                _ => false,
            }
        }
        _ => false,
    }
}

/// Removes the child `seg` of `parent` (`*`: every child). Returns the removed value when single.
fn remove_child(parent: &mut Value, seg: &Seg) -> Option<Value> {
    match (seg, parent) {
        (Seg::Any, Value::Array(a)) => {
            a.clear();
            None
        }
        (Seg::Any, Value::Object(m)) => {
            m.clear();
            None
        }
        (Seg::Key(k), Value::Object(m)) => m.shift_remove(k),
        (Seg::Key(k), Value::Array(a)) => match array_index(k) {
            Some(i) if i < a.len() => Some(a.remove(i)),
            _ => None,
        },
        _ => None,
    }
}

/// Size (nodes + string bytes) and nesting depth of a value, walked without recursion.
fn measure(v: &Value) -> (usize, usize) {
    let mut size = 0usize;
    let mut depth = 0usize;
    let mut stack = vec![(v, 0usize)];
    while let Some((v, d)) = stack.pop() {
        size = size.saturating_add(1);
        match v {
            Value::String(s) => size = size.saturating_add(s.len()),
            Value::Array(a) => {
                depth = depth.max(d + 1);
                stack.extend(a.iter().map(|c| (c, d + 1)));
            }
            Value::Object(m) => {
                depth = depth.max(d + 1);
                for (k, c) in m {
                    size = size.saturating_add(k.len());
                    stack.push((c, d + 1));
                }
            }
            _ => {}
        }
    }
    (size, depth)
}

// ---------------------------------------------------------------------------------------------
// Enrichment
// ---------------------------------------------------------------------------------------------

fn render(pieces: &[Piece], doc: &Value, caller: &Caller<'_>) -> String {
    let mut out = String::new();
    for piece in pieces {
        match piece {
            Piece::Text(t) => out.push_str(t),
            Piece::CallerId => out.push_str(caller.id),
            Piece::CallerUsername => out.push_str(caller.username),
            Piece::Now => out
                .push_str(&chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)),
            Piece::Pointer(p) => match get(doc, &p.segs) {
                Some(Value::String(s)) => out.push_str(s),
                Some(other) => out.push_str(&compact(other)),
                None => {}
            },
        }
        if out.len() > MAX_TEMPLATE_BYTES {
            let mut cut = MAX_TEMPLATE_BYTES;
            while !out.is_char_boundary(cut) {
                cut -= 1;
            }
            out.truncate(cut);
            break;
        }
    }
    out
}

fn compact(v: &Value) -> String {
    serde_json::to_string(v).unwrap_or_default()
}

fn resolve(src: &ValueSource, doc: &Value, caller: &Caller<'_>) -> Value {
    match src {
        ValueSource::Literal(v) => v.clone(),
        ValueSource::Template(pieces) => Value::String(render(pieces, doc, caller)),
    }
}

/// Index of the last `*` in a pointer, if any.
fn last_wildcard(p: &Pointer) -> Option<usize> {
    p.segs.iter().rposition(|s| *s == Seg::Any)
}

/// Charges `size` to the budget; false (and nothing charged) when it does not fit.
fn charge(budget: &mut usize, size: usize) -> bool {
    match budget.checked_sub(size) {
        Some(left) => {
            *budget = left;
            true
        }
        None => false,
    }
}

/// Writes `value` at every place `path` matches (wildcards expand over existing values only).
fn set_all(doc: &mut Value, path: &Pointer, value: Value, budget: &mut usize) {
    let (size, depth) = measure(&value);
    if path.segs.len() + depth > MAX_DEPTH {
        return;
    }
    match last_wildcard(path) {
        None => {
            if charge(budget, size) {
                set_at(doc, &path.segs, value);
            }
        }
        Some(k) => {
            let rest = &path.segs[k + 1..];
            visit_mut(doc, &path.segs[..=k], &mut |target| {
                if !charge(budget, size) {
                    return;
                }
                if rest.is_empty() {
                    *target = value.clone();
                } else {
                    set_at(target, rest, value.clone());
                }
            });
        }
    }
}

fn append_at(target: &mut Value, rest: &[Seg], value: Value) {
    if rest.is_empty() {
        if let Value::Array(a) = target {
            a.push(value);
        }
        return;
    }
    match get(target, rest) {
        Some(Value::Array(_)) => visit_mut(target, rest, &mut |arr| {
            if let Value::Array(a) = arr {
                a.push(value.clone());
            }
        }),
        // another type is left alone: appending must not destroy what is there
        Some(_) => {}
        None => {
            set_at(target, rest, Value::Array(vec![value]));
        }
    }
}

fn append_all(doc: &mut Value, path: &Pointer, value: Value, budget: &mut usize) {
    let (size, depth) = measure(&value);
    if path.segs.len() + depth + 1 > MAX_DEPTH {
        return;
    }
    match last_wildcard(path) {
        None => {
            if charge(budget, size) {
                append_at(doc, &path.segs, value);
            }
        }
        Some(k) => {
            let rest = &path.segs[k + 1..];
            visit_mut(doc, &path.segs[..=k], &mut |target| {
                if charge(budget, size) {
                    append_at(target, rest, value.clone());
                }
            });
        }
    }
}

fn lookup_key(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(_) | Value::Bool(_) => Some(v.to_string()),
        _ => None,
    }
}

fn enrich(op: &CompiledOp, doc: &mut Value, caller: &Caller<'_>, budget: &mut usize) {
    match op {
        CompiledOp::Set { path, value } => {
            let v = resolve(value, doc, caller);
            set_all(doc, path, v, budget);
        }
        CompiledOp::Append { path, value } => {
            let v = resolve(value, doc, caller);
            append_all(doc, path, v, budget);
        }
        CompiledOp::Copy { from, path } => {
            if let Some(v) = get(doc, &from.segs) {
                let (size, _) = measure(v);
                // measure before cloning, so an over-budget copy costs nothing
                if size <= *budget {
                    let v = v.clone();
                    set_all(doc, path, v, budget);
                }
            }
        }
        CompiledOp::Move { from, path } => {
            let Some(v) = get(doc, &from.segs) else {
                return;
            };
            let (_, depth) = measure(v);
            if path.segs.len() + depth > MAX_DEPTH || !can_set(doc, &path.segs) {
                return;
            }
            let Some((last, parent)) = from.segs.split_last() else {
                return;
            };
            let mut taken = None;
            visit_mut(doc, parent, &mut |p| taken = remove_child(p, last));
            if let Some(v) = taken {
                // moving costs no budget: nothing is duplicated
                set_at(doc, &path.segs, v);
            }
        }
        CompiledOp::Lookup {
            path,
            key,
            table,
            default,
        } => {
            let found = get(doc, &key.segs)
                .and_then(lookup_key)
                .and_then(|k| table.get(&k));
            if let Some(v) = found.or(default.as_ref()) {
                set_all(doc, path, v.clone(), budget);
            }
        }
        CompiledOp::Remove { .. }
        | CompiledOp::Mask { .. }
        | CompiledOp::Hash { .. }
        | CompiledOp::Truncate { .. } => {}
    }
}

// ---------------------------------------------------------------------------------------------
// Redaction
// ---------------------------------------------------------------------------------------------

fn redact(op: &CompiledOp, doc: &mut Value) {
    match op {
        CompiledOp::Remove { path } => {
            let Some((last, parent)) = path.segs.split_last() else {
                return;
            };
            visit_mut(doc, parent, &mut |p| {
                remove_child(p, last);
            });
        }
        CompiledOp::Mask {
            path,
            keep_start,
            keep_end,
            mask,
        } => {
            visit_mut(doc, &path.segs, &mut |v| {
                *v = mask_value(v, *keep_start, *keep_end, *mask)
            });
        }
        CompiledOp::Hash { path } => visit_mut(doc, &path.segs, &mut |v| *v = hash_value(v)),
        CompiledOp::Truncate { path, max_chars } => {
            visit_mut(doc, &path.segs, &mut |v| truncate_value(v, *max_chars));
        }
        CompiledOp::Set { .. }
        | CompiledOp::Append { .. }
        | CompiledOp::Copy { .. }
        | CompiledOp::Move { .. }
        | CompiledOp::Lookup { .. } => {}
    }
}

/// Masks a string: the first `keep_start` and last `keep_end` characters stay, every other one becomes
/// `mask`. When the kept parts would cover the whole string, every character is masked (a mask never
/// returns its input). Numbers, booleans and null are masked as their JSON text; objects and arrays
/// become [`MASKED_CONTAINER_CHARS`] mask characters, revealing nothing of their content or size.
pub fn mask_value(v: &Value, keep_start: usize, keep_end: usize, mask: char) -> Value {
    let text = match v {
        Value::String(s) => s.clone(),
        Value::Array(_) | Value::Object(_) => {
            return Value::String(std::iter::repeat_n(mask, MASKED_CONTAINER_CHARS).collect());
        }
        other => other.to_string(),
    };
    let n = text.chars().count();
    let out: String = if keep_start.saturating_add(keep_end) >= n {
        std::iter::repeat_n(mask, n).collect()
    } else {
        text.chars()
            .enumerate()
            .map(|(i, c)| {
                if i < keep_start || i >= n - keep_end {
                    c
                } else {
                    mask
                }
            })
            .collect()
    };
    Value::String(out)
}

/// SHA-256 hex of a string's UTF-8 bytes; any other value hashes its compact JSON text.
pub fn hash_value(v: &Value) -> Value {
    let digest = match v {
        Value::String(s) => Sha256::digest(s.as_bytes()),
        other => Sha256::digest(compact(other).as_bytes()),
    };
    let mut hex = String::with_capacity(64);
    for b in digest.iter() {
        hex.push_str(&format!("{b:02x}"));
    }
    Value::String(hex)
}

/// Cuts a string to `max_chars` characters. Any other value whose compact JSON text is longer than
/// `max_chars` becomes the string of that text's first `max_chars` characters, so no more than
/// `max_chars` characters of data survive; a shorter one is left as is.
pub fn truncate_value(v: &mut Value, max_chars: usize) {
    match v {
        Value::String(s) => {
            if let Some((cut, _)) = s.char_indices().nth(max_chars) {
                s.truncate(cut);
            }
        }
        other => {
            let text = compact(other);
            if let Some((cut, _)) = text.char_indices().nth(max_chars) {
                *other = Value::String(text[..cut].to_owned());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn mask_never_returns_its_input() {
        assert_eq!(mask_value(&json!("guest-51"), 2, 0, '*'), json!("gu******"));
        assert_eq!(mask_value(&json!("ab"), 1, 1, '*'), json!("**"));
        assert_eq!(mask_value(&json!(""), 0, 0, '*'), json!(""));
        assert_eq!(mask_value(&json!("ñandú"), 0, 1, '#'), json!("####ú"));
        assert_eq!(mask_value(&json!({ "a": 1 }), 9, 9, '*'), json!("********"));
        assert_eq!(mask_value(&json!(123456), 0, 2, '*'), json!("****56"));
    }

    #[test]
    fn truncate_counts_characters() {
        let mut v = json!("ñandú");
        truncate_value(&mut v, 3);
        assert_eq!(v, json!("ñan"));
        let mut v = json!([1, 2, 3]);
        truncate_value(&mut v, 3);
        assert_eq!(v, json!("[1,"));
        let mut v = json!(true);
        truncate_value(&mut v, 4);
        assert_eq!(v, json!(true));
    }

    #[test]
    fn array_indexes_follow_rfc_6901() {
        assert_eq!(array_index("0"), Some(0));
        assert_eq!(array_index("12"), Some(12));
        assert_eq!(array_index("01"), None);
        assert_eq!(array_index("-"), None);
        assert_eq!(array_index(""), None);
        assert_eq!(array_index("99999999999999999999999"), None);
    }

    #[test]
    fn measure_counts_nodes_bytes_and_depth() {
        assert_eq!(measure(&json!(1)), (1, 0));
        assert_eq!(measure(&json!({ "ab": ["xyz"] })), (1 + 2 + 1 + 1 + 3, 2));
    }
}
