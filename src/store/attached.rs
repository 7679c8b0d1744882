//! Things shared per topic in one process, by name, that the store does not know the type
//! of. Consumer groups use it so that every handle to one group in a process shares one
//! state, without the store depending on the consumer layer.

use std::any::Any;
use std::collections::HashMap;
use std::sync::{Arc, Weak};

use parking_lot::Mutex;

use crate::error::Result;

type Entry = Weak<dyn Any + Send + Sync>;

/// Weak references by name: an attached value lives as long as its users hold it.
#[derive(Default)]
pub(crate) struct Attached {
    by_name: Mutex<HashMap<String, Entry>>,
}

impl Attached {
    /// The live value attached under `name`, if it has type `T` and `usable` accepts it.
    pub(crate) fn get<T: Any + Send + Sync>(&self, name: &str, usable: impl Fn(&T) -> bool) -> Option<Arc<T>> {
        let map = self.by_name.lock();
        Self::live(&map, name, &usable)
    }

    /// The live value under `name` that `usable` accepts, else a new one from `make`,
    /// attached in its place. The lock is held while `make` runs, so two callers never both
    /// make one.
    pub(crate) fn get_or_make<T: Any + Send + Sync>(
        &self,
        name: &str,
        usable: impl Fn(&T) -> bool,
        make: impl FnOnce() -> Result<Arc<T>>,
    ) -> Result<Arc<T>> {
        let mut map = self.by_name.lock();
        if let Some(v) = Self::live(&map, name, &usable) {
            return Ok(v);
        }
        let v = make()?;
        let any: Arc<dyn Any + Send + Sync> = v.clone();
        map.retain(|_, w| w.strong_count() > 0);
        map.insert(name.to_owned(), Arc::downgrade(&any));
        Ok(v)
    }

    fn live<T: Any + Send + Sync>(
        map: &HashMap<String, Entry>,
        name: &str,
        usable: &impl Fn(&T) -> bool,
    ) -> Option<Arc<T>> {
        let v = map.get(name)?.upgrade()?.downcast::<T>().ok()?;
        usable(&v).then_some(v)
    }
}
