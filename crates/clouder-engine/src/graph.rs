use crate::Resource;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum GraphError {
    #[error("resource {0} is declared twice")]
    Duplicate(String),
    #[error("resource {resource} depends on {missing}, which is not in the graph")]
    MissingDependency { resource: String, missing: String },
    #[error("dependency cycle through {0}")]
    Cycle(String),
}

/// Desired resources with their dependencies; acyclic by construction.
#[derive(Clone, Default)]
pub struct Graph {
    nodes: Vec<Arc<dyn Resource>>,
    index: HashMap<String, usize>,
}

impl Graph {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn add(&mut self, resource: impl Resource + 'static) -> Result<(), GraphError> {
        self.add_arc(Arc::new(resource))
    }

    pub fn add_arc(&mut self, resource: Arc<dyn Resource>) -> Result<(), GraphError> {
        let id = resource.id().to_string();
        if self.index.contains_key(&id) {
            return Err(GraphError::Duplicate(id));
        }
        self.index.insert(id, self.nodes.len());
        self.nodes.push(resource);
        Ok(())
    }

    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    pub fn get(&self, id: &str) -> Option<&Arc<dyn Resource>> {
        self.index.get(id).map(|&i| &self.nodes[i])
    }

    pub fn contains(&self, id: &str) -> bool {
        self.index.contains_key(id)
    }

    pub fn resources(&self) -> impl Iterator<Item = &Arc<dyn Resource>> {
        self.nodes.iter()
    }

    /// Checks references and cycles, and returns the dependency depth of every resource
    /// (0 = no dependencies): creation goes by rising depth, deletion by falling depth.
    pub fn depths(&self) -> Result<BTreeMap<String, usize>, GraphError> {
        let mut depth: HashMap<&str, usize> = HashMap::new();
        // 0 = unvisited, 1 = on the stack, 2 = done
        let mut mark = vec![0u8; self.nodes.len()];
        for start in 0..self.nodes.len() {
            self.visit(start, &mut mark, &mut depth)?;
        }
        Ok(depth.into_iter().map(|(k, v)| (k.to_string(), v)).collect())
    }

    fn visit<'a>(
        &'a self,
        i: usize,
        mark: &mut [u8],
        depth: &mut HashMap<&'a str, usize>,
    ) -> Result<usize, GraphError> {
        let id = self.nodes[i].id();
        match mark[i] {
            2 => return Ok(depth[id]),
            1 => return Err(GraphError::Cycle(id.to_string())),
            _ => {}
        }
        mark[i] = 1;
        let mut d = 0;
        for dep in self.nodes[i].depends_on() {
            let j = *self
                .index
                .get(&dep)
                .ok_or_else(|| GraphError::MissingDependency {
                    resource: id.to_string(),
                    missing: dep.clone(),
                })?;
            d = d.max(self.visit(j, mark, depth)? + 1);
        }
        mark[i] = 2;
        depth.insert(id, d);
        Ok(d)
    }
}
