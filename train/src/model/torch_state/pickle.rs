//! A restricted pickle reader: it turns the opcodes `torch.save` emits
//! into a tree of plain [`Value`]s and never executes anything. A global
//! (`torch._utils._rebuild_tensor_v2`, `collections.OrderedDict`, …) is
//! kept as its module and name, a `REDUCE` as the call it would make, a
//! persistent id as the tuple it carries; the caller decides what, if
//! anything, such a node means. Every other opcode (`INST`, `OBJ`,
//! extension registry, text-protocol forms) is refused with its byte
//! offset.
//!
//! Why not a crate: `serde-pickle` rejects persistent ids (`BINPERSID`),
//! which every tensor in a torch.save file is made of; the one crate that
//! reads them (`repugnant-pickle` 0.0.1) describes itself as low-effort
//! scraping and knows only the zip container.
//!
//! Objects live in an arena and the stack, the memo and containers hold
//! indices into it, so a memoised dict filled after it was memoised (how
//! pickle writes every dict) is one object wherever it is referenced.

/// Index of a value in [`Pickle::values`].
pub type Id = usize;

/// What one pickled object is, without running any Python.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    None,
    Bool(bool),
    /// Wide enough for torch's legacy magic number (80 bits).
    Int(i128),
    Float(f64),
    Str(String),
    Bytes(Vec<u8>),
    Tuple(Vec<Id>),
    List(Vec<Id>),
    /// Insertion order kept: a state dict's order is its module's.
    Dict(Vec<(Id, Id)>),
    /// A reference to `module.name`, never looked up.
    Global {
        module: String,
        name: String,
    },
    /// `REDUCE`/`NEWOBJ`: `callable(*args)`, not called; `state` is what a
    /// later `BUILD` would have set on the result.
    Call {
        callable: Id,
        args: Id,
        state: Option<Id>,
    },
    /// `BINPERSID`: an object the pickle refers to by id (torch: a storage).
    Persistent(Id),
}

/// A whole pickle: its values and the one `STOP` left on the stack.
#[derive(Debug)]
pub struct Pickle {
    pub values: Vec<Value>,
    pub root: Id,
    /// Bytes the pickle took, `STOP` included.
    pub len: usize,
}

impl Pickle {
    pub fn get(&self, id: Id) -> &Value {
        &self.values[id]
    }

    /// The string `id` holds, if it is one.
    pub fn str(&self, id: Id) -> Option<&str> {
        match self.get(id) {
            Value::Str(s) => Some(s),
            _ => None,
        }
    }

    /// The integer `id` holds, if it is one.
    pub fn int(&self, id: Id) -> Option<i128> {
        match self.get(id) {
            Value::Int(i) => Some(*i),
            _ => None,
        }
    }
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum PickleError {
    #[error("ends inside the pickle at byte {offset}")]
    Eof { offset: usize },
    #[error("opcode 0x{op:02x} at byte {offset} is not one torch.save writes")]
    Opcode { op: u8, offset: usize },
    #[error("malformed pickle at byte {offset}: {reason}")]
    Malformed { offset: usize, reason: String },
}

/// Reads one pickle from the start of `data` (more may follow it).
pub fn parse(data: &[u8]) -> Result<Pickle, PickleError> {
    let mut vm = Machine {
        data,
        pos: 0,
        values: Vec::new(),
        stack: Vec::new(),
        marks: Vec::new(),
        memo: std::collections::HashMap::new(),
    };
    loop {
        let offset = vm.pos;
        let op = vm.byte()?;
        if op == b'.' {
            let root = vm.pop(offset)?;
            return Ok(Pickle {
                values: vm.values,
                root,
                len: vm.pos,
            });
        }
        vm.step(op, offset)?;
    }
}

struct Machine<'a> {
    data: &'a [u8],
    pos: usize,
    values: Vec<Value>,
    stack: Vec<Id>,
    marks: Vec<usize>,
    memo: std::collections::HashMap<u64, Id>,
}

impl Machine<'_> {
    fn take(&mut self, n: usize) -> Result<&[u8], PickleError> {
        let end = self.pos.checked_add(n).filter(|&e| e <= self.data.len());
        let end = end.ok_or(PickleError::Eof {
            offset: self.data.len(),
        })?;
        let bytes = &self.data[self.pos..end];
        self.pos = end;
        Ok(bytes)
    }

    fn byte(&mut self) -> Result<u8, PickleError> {
        Ok(self.take(1)?[0])
    }

    fn le<const N: usize>(&mut self) -> Result<[u8; N], PickleError> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N)?);
        Ok(out)
    }

    /// A length prefix of `N` little-endian bytes, checked against what is left.
    fn len_prefix<const N: usize>(&mut self) -> Result<usize, PickleError> {
        let mut wide = [0u8; 8];
        wide[..N].copy_from_slice(&self.le::<N>()?);
        let n = u64::from_le_bytes(wide);
        let left = (self.data.len() - self.pos) as u64;
        if n > left {
            return Err(PickleError::Eof {
                offset: self.data.len(),
            });
        }
        Ok(n as usize)
    }

    fn line(&mut self, offset: usize) -> Result<String, PickleError> {
        let rest = &self.data[self.pos..];
        let end = rest
            .iter()
            .position(|&b| b == b'\n')
            .ok_or(PickleError::Eof {
                offset: self.data.len(),
            })?;
        let text = utf8(rest[..end].to_vec(), offset)?;
        self.pos += end + 1;
        Ok(text)
    }

    fn push(&mut self, v: Value) {
        self.values.push(v);
        self.stack.push(self.values.len() - 1);
    }

    fn pop(&mut self, offset: usize) -> Result<Id, PickleError> {
        if self.marks.last().is_some_and(|&m| m >= self.stack.len()) {
            return Err(malformed(offset, "pops past a mark"));
        }
        self.stack
            .pop()
            .ok_or_else(|| malformed(offset, "pops an empty stack"))
    }

    fn top(&self, offset: usize) -> Result<Id, PickleError> {
        self.stack
            .last()
            .copied()
            .ok_or_else(|| malformed(offset, "no object on the stack"))
    }

    /// The objects pushed since the last `MARK`, which is dropped.
    fn pop_mark(&mut self, offset: usize) -> Result<Vec<Id>, PickleError> {
        let mark = self
            .marks
            .pop()
            .ok_or_else(|| malformed(offset, "no MARK to pop to"))?;
        Ok(self.stack.split_off(mark))
    }

    fn memo_get(&mut self, key: u64, offset: usize) -> Result<(), PickleError> {
        let id = *self
            .memo
            .get(&key)
            .ok_or_else(|| malformed(offset, &format!("memo entry {key} was never stored")))?;
        self.stack.push(id);
        Ok(())
    }

    fn memo_put(&mut self, key: u64, offset: usize) -> Result<(), PickleError> {
        let id = self.top(offset)?;
        self.memo.insert(key, id);
        Ok(())
    }

    fn step(&mut self, op: u8, offset: usize) -> Result<(), PickleError> {
        match op {
            0x80 => {
                let proto = self.byte()?;
                if proto > 5 {
                    return Err(malformed(offset, &format!("protocol {proto}")));
                }
            }
            // FRAME: a length hint only (protocol 4).
            0x95 => {
                self.take(8)?;
            }
            b'(' => self.marks.push(self.stack.len()),
            b'0' => {
                self.pop(offset)?;
            }
            b'1' => {
                self.pop_mark(offset)?;
            }
            b'2' => {
                let id = self.top(offset)?;
                self.stack.push(id);
            }
            b'q' => {
                let key = u64::from(self.byte()?);
                self.memo_put(key, offset)?;
            }
            b'r' => {
                let key = u64::from(u32::from_le_bytes(self.le()?));
                self.memo_put(key, offset)?;
            }
            0x94 => self.memo_put(self.memo.len() as u64, offset)?,
            b'h' => {
                let key = u64::from(self.byte()?);
                self.memo_get(key, offset)?;
            }
            b'j' => {
                let key = u64::from(u32::from_le_bytes(self.le()?));
                self.memo_get(key, offset)?;
            }
            _ => return self.step_value(op, offset),
        }
        Ok(())
    }

    /// Opcodes that push or combine values.
    fn step_value(&mut self, op: u8, offset: usize) -> Result<(), PickleError> {
        let value = match op {
            b'N' => Value::None,
            0x88 => Value::Bool(true),
            0x89 => Value::Bool(false),
            b'J' => Value::Int(i32::from_le_bytes(self.le()?).into()),
            b'K' => Value::Int(self.byte()?.into()),
            b'M' => Value::Int(u16::from_le_bytes(self.le()?).into()),
            0x8a => {
                let n = self.len_prefix::<1>()?;
                Value::Int(long(self.take(n)?, offset)?)
            }
            0x8b => {
                let n = self.len_prefix::<4>()?;
                Value::Int(long(self.take(n)?, offset)?)
            }
            b'G' => Value::Float(f64::from_be_bytes(self.le()?)),
            _ => return self.step_bytes(op, offset),
        };
        self.push(value);
        Ok(())
    }

    /// Strings and bytes.
    fn step_bytes(&mut self, op: u8, offset: usize) -> Result<(), PickleError> {
        let (n, text) = match op {
            0x8c => (self.len_prefix::<1>()?, true),
            b'X' => (self.len_prefix::<4>()?, true),
            0x8d => (self.len_prefix::<8>()?, true),
            // Python 2 `str` (BINSTRING, SHORT_BINSTRING): kept as bytes.
            b'U' | b'C' => (self.len_prefix::<1>()?, false),
            b'T' | b'B' => (self.len_prefix::<4>()?, false),
            0x8e => (self.len_prefix::<8>()?, false),
            _ => return self.step_container(op, offset),
        };
        let bytes = self.take(n)?.to_vec();
        let value = if text {
            Value::Str(utf8(bytes, offset)?)
        } else {
            Value::Bytes(bytes)
        };
        self.push(value);
        Ok(())
    }

    /// Tuples, lists and dicts.
    fn step_container(&mut self, op: u8, offset: usize) -> Result<(), PickleError> {
        match op {
            b')' => self.push(Value::Tuple(Vec::new())),
            b't' => {
                let items = self.pop_mark(offset)?;
                self.push(Value::Tuple(items));
            }
            0x85..=0x87 => {
                let n = usize::from(op - 0x84);
                if self.stack.len() < n + self.marks.last().copied().unwrap_or(0) {
                    return Err(malformed(
                        offset,
                        "a tuple of more items than the stack holds",
                    ));
                }
                let items = self.stack.split_off(self.stack.len() - n);
                self.push(Value::Tuple(items));
            }
            b']' => self.push(Value::List(Vec::new())),
            b'l' => {
                let items = self.pop_mark(offset)?;
                self.push(Value::List(items));
            }
            b'}' => self.push(Value::Dict(Vec::new())),
            b'd' => {
                let items = self.pop_mark(offset)?;
                let pairs = pairs(&items, offset)?;
                self.push(Value::Dict(pairs));
            }
            b'a' => {
                let item = self.pop(offset)?;
                self.extend_list(vec![item], offset)?;
            }
            b'e' => {
                let items = self.pop_mark(offset)?;
                self.extend_list(items, offset)?;
            }
            b's' => {
                let value = self.pop(offset)?;
                let key = self.pop(offset)?;
                self.extend_dict(vec![(key, value)], offset)?;
            }
            b'u' => {
                let items = self.pop_mark(offset)?;
                let pairs = pairs(&items, offset)?;
                self.extend_dict(pairs, offset)?;
            }
            _ => return self.step_object(op, offset),
        }
        Ok(())
    }

    /// Globals, calls and persistent ids: recorded, never run.
    fn step_object(&mut self, op: u8, offset: usize) -> Result<(), PickleError> {
        match op {
            b'c' => {
                let module = self.line(offset)?;
                let name = self.line(offset)?;
                self.push(Value::Global { module, name });
            }
            0x93 => {
                let name = self.pop(offset)?;
                let module = self.pop(offset)?;
                let (Value::Str(module), Value::Str(name)) =
                    (self.values[module].clone(), self.values[name].clone())
                else {
                    return Err(malformed(offset, "STACK_GLOBAL of non-strings"));
                };
                self.push(Value::Global { module, name });
            }
            b'R' | 0x81 => {
                let args = self.pop(offset)?;
                let callable = self.pop(offset)?;
                if !matches!(self.values[args], Value::Tuple(_)) {
                    return Err(malformed(offset, "call arguments are not a tuple"));
                }
                self.push(reduce(&self.values, callable, args));
            }
            b'b' => {
                let state = self.pop(offset)?;
                let target = self.top(offset)?;
                match &mut self.values[target] {
                    Value::Call { state: s, .. } => *s = Some(state),
                    // OrderedDict's instance attributes (a state dict's
                    // `_metadata`): not weights, dropped.
                    Value::Dict(_) => {}
                    _ => return Err(malformed(offset, "BUILD on an object that is not a call")),
                }
            }
            b'Q' => {
                let pid = self.pop(offset)?;
                self.push(Value::Persistent(pid));
            }
            _ => return Err(PickleError::Opcode { op, offset }),
        }
        Ok(())
    }

    fn extend_list(&mut self, items: Vec<Id>, offset: usize) -> Result<(), PickleError> {
        let target = self.top(offset)?;
        match &mut self.values[target] {
            Value::List(list) => {
                list.extend(items);
                Ok(())
            }
            _ => Err(malformed(offset, "APPEND to something not a list")),
        }
    }

    fn extend_dict(&mut self, items: Vec<(Id, Id)>, offset: usize) -> Result<(), PickleError> {
        let target = self.top(offset)?;
        match &mut self.values[target] {
            Value::Dict(dict) => {
                dict.extend(items);
                Ok(())
            }
            _ => Err(malformed(offset, "SETITEM on something not a dict")),
        }
    }
}

/// `collections.OrderedDict()` is a dict for our purposes (its items
/// follow as `SETITEMS`); every other call stays a call.
fn reduce(values: &[Value], callable: Id, args: Id) -> Value {
    let is_ordered_dict = matches!(
        &values[callable],
        Value::Global { module, name } if module == "collections" && name == "OrderedDict"
    );
    if is_ordered_dict && values[args] == Value::Tuple(Vec::new()) {
        Value::Dict(Vec::new())
    } else {
        Value::Call {
            callable,
            args,
            state: None,
        }
    }
}

fn pairs(items: &[Id], offset: usize) -> Result<Vec<(Id, Id)>, PickleError> {
    if !items.len().is_multiple_of(2) {
        return Err(malformed(offset, "a dict of an odd number of items"));
    }
    Ok(items.chunks(2).map(|kv| (kv[0], kv[1])).collect())
}

/// A little-endian two's-complement integer (`LONG1`/`LONG4`).
fn long(bytes: &[u8], offset: usize) -> Result<i128, PickleError> {
    if bytes.len() > 16 {
        return Err(malformed(
            offset,
            &format!("a {}-byte integer", bytes.len()),
        ));
    }
    let negative = bytes.last().is_some_and(|&b| b & 0x80 != 0);
    let mut wide = [if negative { 0xff } else { 0 }; 16];
    wide[..bytes.len()].copy_from_slice(bytes);
    Ok(i128::from_le_bytes(wide))
}

fn utf8(bytes: Vec<u8>, offset: usize) -> Result<String, PickleError> {
    String::from_utf8(bytes).map_err(|_| malformed(offset, "a string that is not UTF-8"))
}

fn malformed(offset: usize, reason: &str) -> PickleError {
    PickleError::Malformed {
        offset,
        reason: reason.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_a_memoised_dict_filled_after_it_was_stored() {
        // {'a': [1, -2]} then the same dict again through the memo:
        // PROTO 2, EMPTY_DICT, BINPUT 0, BINUNICODE 'a', EMPTY_LIST, MARK,
        // BININT1 1, BININT -2, APPENDS, SETITEM, BINGET 0, TUPLE2, STOP.
        let mut p = vec![
            0x80, 2, b'}', b'q', 0, b'X', 1, 0, 0, 0, b'a', b']', b'(', b'K', 1,
        ];
        p.extend([
            b'J', 0xfe, 0xff, 0xff, 0xff, b'e', b's', b'h', 0, 0x86, b'.',
        ]);
        let pickle = parse(&p).unwrap();
        let Value::Tuple(items) = pickle.get(pickle.root) else {
            panic!("{:?}", pickle.get(pickle.root))
        };
        assert_eq!(items[0], items[1], "one dict, referenced twice");
        let Value::Dict(d) = pickle.get(items[0]) else {
            panic!()
        };
        assert_eq!(pickle.str(d[0].0), Some("a"));
        let Value::List(l) = pickle.get(d[0].1) else {
            panic!()
        };
        assert_eq!(pickle.int(l[1]), Some(-2));
        assert_eq!(pickle.len, p.len());
    }

    #[test]
    fn refuses_code_and_truncation() {
        // INST (`i`) would build an arbitrary class instance.
        assert_eq!(
            parse(&[0x80, 2, b'(', b'i']).unwrap_err(),
            PickleError::Opcode {
                op: b'i',
                offset: 3
            }
        );
        assert!(matches!(
            parse(&[0x80, 2, b'X', 9, 0, 0, 0, b'a']).unwrap_err(),
            PickleError::Eof { .. }
        ));
        assert!(matches!(
            parse(&[0x80, 2, b'.']).unwrap_err(),
            PickleError::Malformed { .. }
        ));
    }

    #[test]
    fn reads_the_legacy_magic_number() {
        let magic: i128 = 0x1950a86a20f9469cfc6c;
        let mut p = vec![0x80, 2, 0x8a, 10];
        p.extend_from_slice(&magic.to_le_bytes()[..10]);
        p.push(b'.');
        let pickle = parse(&p).unwrap();
        assert_eq!(pickle.int(pickle.root), Some(magic));
    }
}
