//! Maps field paths (`spec.nodePools[1].name`) to where they appear in the YAML source, so that
//! errors found after deserializing still point at a line and column.

use std::collections::HashMap;
use yaml_rust2::parser::{Event, MarkedEventReceiver, Parser};
use yaml_rust2::scanner::Marker;

pub type Index = HashMap<String, (usize, usize)>;

enum Frame {
    Map { path: String, key: Option<String> },
    Seq { path: String, next: usize },
}

#[derive(Default)]
struct Recorder {
    stack: Vec<Frame>,
    index: Index,
}

impl Recorder {
    /// The path of the node that starts now, advancing the parent's position.
    fn child_path(&mut self) -> Option<String> {
        match self.stack.last_mut() {
            None => Some(String::new()),
            Some(Frame::Map { path, key }) => key.take().map(|k| join(path, &k)),
            Some(Frame::Seq { path, next }) => {
                *next += 1;
                Some(format!("{path}[{}]", *next - 1))
            }
        }
    }
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

impl MarkedEventReceiver for Recorder {
    fn on_event(&mut self, ev: Event, mark: Marker) {
        let at = (mark.line(), mark.col() + 1);
        match ev {
            Event::Scalar(value, ..) => {
                // A key names the next node: a scalar value is located where it is written, a
                // nested mapping or sequence at its key (block collections start oddly).
                if let Some(Frame::Map {
                    path,
                    key: key @ None,
                }) = self.stack.last_mut()
                {
                    // A block mapping's own start mark is unreliable; its first key places it.
                    self.index.entry(path.clone()).or_insert(at);
                    self.index.entry(join(path, &value)).or_insert(at);
                    *key = Some(value);
                } else if let Some(path) = self.child_path() {
                    self.index.insert(path, at);
                }
            }
            Event::MappingStart(..) => {
                let path = self.child_path().unwrap_or_default();
                self.stack.push(Frame::Map { path, key: None });
            }
            Event::SequenceStart(..) => {
                let path = self.child_path().unwrap_or_default();
                self.index.entry(path.clone()).or_insert(at);
                self.stack.push(Frame::Seq { path, next: 0 });
            }
            Event::MappingEnd | Event::SequenceEnd => {
                self.stack.pop();
            }
            Event::Alias(_) => {
                self.child_path();
            }
            _ => {}
        }
    }
}

/// Indexes every key and item of the first document; a YAML syntax error yields what was seen.
pub fn index(text: &str) -> Index {
    let mut recorder = Recorder::default();
    let _ = Parser::new_from_str(text).load(&mut recorder, false);
    recorder.index
}

/// The position of `path`, or of its nearest ancestor present in the source.
pub fn find(index: &Index, path: &str) -> Option<(usize, usize)> {
    let mut path = path;
    loop {
        if let Some(at) = index.get(path) {
            return Some(*at);
        }
        let cut = path.rfind(['.', '['])?;
        path = &path[..cut];
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_and_sequence_items_are_located() {
        let text = "a:\n  b: 1\n  list:\n    - name: x\n    - name: y\n      c: [1, 2]\n";
        let index = index(text);
        assert_eq!(find(&index, "a.b"), Some((2, 6)));
        assert_eq!(find(&index, "a.list[1].name"), Some((5, 13)));
        assert_eq!(find(&index, "a.list[1].c"), Some((6, 7)));
        // A missing field points at its nearest parent.
        assert_eq!(find(&index, "a.list[0].missing"), Some((4, 7)));
    }
}
