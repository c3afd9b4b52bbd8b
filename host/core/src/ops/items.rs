//! Items and what is stored on them: uploads, links, bytes, thumbnails, annotations and
//! their review, exports, comparisons and evaluations.

use super::*;

impl Home {
    /// Stores `bytes` as item `name` of `dataset` and fires the triggers that match.
    pub fn upload(&self, dataset: &str, name: &str, bytes: &[u8]) -> Result<Uploaded> {
        let (item, change, queued) = item::upload(
            &mut *self.store()?,
            dataset,
            name,
            bytes,
            &crate::work::on_item_change,
        )?;
        Ok(Uploaded {
            item,
            change,
            queued,
        })
    }

    pub fn items(&self, dataset: Option<&str>) -> Result<Vec<ItemRecord>> {
        item::list(&*self.store()?, dataset)
    }

    pub fn datasets(&self) -> Result<Vec<Dataset>> {
        item::datasets(&*self.store()?)
    }

    pub fn item(&self, id: i64) -> Result<ItemRecord> {
        item::get(&*self.store()?, id)
    }

    /// An item's stored annotations, with where each came from.
    pub fn item_annotations(&self, id: i64) -> Result<Vec<Stored>> {
        let store = self.store()?;
        item::get(&store, id)?;
        annotation::item_annotations(&store, id)
    }

    /// An item and its original bytes (a linked item's downloaded first, see [`Home::fetch`]).
    pub fn item_bytes(&self, id: i64) -> Result<(ItemRecord, Vec<u8>)> {
        let (item, download) = self.item_to_read(id)?;
        if download {
            return self.fetched(id);
        }
        let bytes = self.store()?.read_blob(&item.digest)?;
        Ok((item, bytes))
    }

    /// The item, and whether its bytes must be downloaded before they can be read.
    pub(super) fn item_to_read(&self, id: i64) -> Result<(ItemRecord, bool)> {
        let store = self.store()?;
        let item = item::get(&store, id)?;
        let download = link::needs_download(&store, &item)?;
        Ok((item, download))
    }

    /// Downloads a linked item's bytes unless the store has them (within the default item
    /// size limit and a minute), and returns the item as it is then.
    pub fn fetch(&self, id: i64) -> Result<ItemRecord> {
        match self.item_to_read(id)? {
            (item, false) => Ok(item),
            (_, true) => Ok(self.fetched(id)?.0),
        }
    }

    pub(super) fn fetched(&self, id: i64) -> Result<(ItemRecord, Vec<u8>)> {
        // A connection of its own: a download must not hold the home's for a minute.
        let store = self.location.open()?;
        let item = item::get(&store, id)?;
        let limits = crate::runtime::Limits::default();
        let bytes = link::bytes(&store, &item, limits.max_item_bytes, limits.timeout)?;
        Ok((item::get(&store, id)?, bytes))
    }

    /// Links items to URLs (see [`crate::items::link`]); `access` stays with the dataset (private
    /// addresses, headers from secrets).
    pub fn link(
        &self,
        dataset: &str,
        links: &[Link],
        access: &link::Access,
    ) -> Result<Vec<Uploaded>> {
        let linked = link::link(
            &mut *self.store()?,
            dataset,
            links,
            access,
            &crate::work::on_item_change,
        )?;
        Ok(linked
            .into_iter()
            .map(|(item, change, queued)| Uploaded {
                item,
                change,
                queued,
            })
            .collect())
    }

    // Secrets.

    /// A JPEG thumbnail of an item's image, made once and cached (see [`crate::items::thumbnail`]).
    pub fn thumbnail(&self, id: i64, side: u32) -> Result<Vec<u8>> {
        // Downloaded only when the store lacks the bytes: a cached thumbnail reads nothing else.
        let item = self.fetch(id)?;
        crate::items::thumbnail::get(&*self.store()?, &item, side)
    }

    /// Every item of a dataset with its stored annotations, by item name.
    pub fn annotated_items(&self, dataset: &str) -> Result<Vec<(ItemRecord, Vec<Stored>)>> {
        annotation::annotated_items(&*self.store()?, dataset)
    }

    /// A dataset's annotations in an export format; with `kept_only`, only those a person
    /// accepted, edited or drew.
    pub fn export(
        &self,
        dataset: &str,
        format: export::Format,
        kept_only: bool,
    ) -> Result<export::Exported> {
        export::export(&*self.store()?, dataset, format, kept_only)
    }

    /// A candidate package revision run on a dataset beside a service's annotations, storing
    /// nothing (see [`compare`](crate::work::compare)).
    pub fn compare(&self, request: &compare::Request) -> Result<compare::Comparison> {
        let runtime = self.runtime()?;
        // A connection of its own: the candidate runs for seconds per item, and the home's
        // (shared by the API's requests and the CLI's steps) must not wait on it. The
        // comparison only reads, and SQLite's WAL lets it read beside the writers.
        compare::compare(&self.location.open()?, &runtime, request)
    }

    /// A service's boxes on a dataset scored against ground truth (see
    /// [`evaluate`](crate::results::evaluate)).
    pub fn evaluate(&self, request: &evaluate::Request) -> Result<evaluate::Evaluation> {
        evaluate::evaluate(&*self.store()?, request)
    }

    /// A comparison as one self-contained HTML page of overlays.
    pub fn compare_html(&self, comparison: &compare::Comparison) -> Result<String> {
        compare::html(&*self.store()?, comparison)
    }

    /// Every review task, with how many items wait and were decided.
    pub fn tasks(&self) -> Result<Vec<Task>> {
        task::list(&*self.store()?)
    }

    pub fn task(&self, name: &str) -> Result<Task> {
        task::get(&*self.store()?, name)
    }

    /// The items task `name` holds (waiting, oldest first) or has decided (newest first).
    pub fn task_items(&self, name: &str, decided: bool, limit: u64) -> Result<Vec<Held>> {
        task::items(&*self.store()?, name, decided, limit)
    }

    /// A person completes or discards an item a task holds; the item goes on in its pipeline.
    /// `account` is the deciding account's id (an item handed to another is refused to it).
    pub fn decide(
        &self,
        name: &str,
        item: i64,
        outcome: Outcome,
        by: Option<&str>,
        account: Option<i64>,
    ) -> Result<Decided> {
        task::decide(&mut *self.store()?, name, item, outcome, by, account)
    }

    /// A new task over a dataset's items, assigned to some accounts (a pipeline of its own).
    pub fn create_task(&self, create: &task::queue::Create) -> Result<Task> {
        task::queue::create(&mut *self.store()?, create)
    }

    /// Sets the share of task `task`'s completions (percent) a second reviewer checks.
    pub fn set_task_qa(&self, task: &str, percent: u8) -> Result<Task> {
        task::queue::set_qa(&mut *self.store()?, task, percent)
    }

    /// Assigns task `task` to account `user` (`false`: takes it back).
    pub fn assign_task(&self, task: &str, user: &str, assigned: bool) -> Result<Task> {
        task::queue::assign(&mut *self.store()?, task, user, assigned)
    }

    /// Hands account `user` the next item of task `task` (held for them a while).
    pub fn next_item(&self, task: &str, user: &crate::people::user::User) -> Result<Option<Held>> {
        task::queue::next(&mut *self.store()?, task, user)
    }

    /// A person's review of an annotation: accept, reject, relabel, move or resize.
    pub fn review(&self, id: i64, change: &review::Change) -> Result<Stored> {
        review::review(&mut *self.store()?, id, change)
    }

    /// The item annotation `id` is on (what the API checks a reviewer's grants against).
    pub fn annotation_item(&self, id: i64) -> Result<i64> {
        review::item_of(&*self.store()?, id)
    }

    /// An annotation a person drew on an item.
    pub fn add_annotation(&self, item: i64, manual: &review::Manual) -> Result<Stored> {
        review::add(&mut *self.store()?, item, manual)
    }

    // Executions.
}
