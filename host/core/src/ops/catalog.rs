//! Packages, services, triggers, pipelines and secrets: what runs, on what, when.

use super::*;

impl Home {
    /// Checks a package folder and stores it as its next revision. `root`: a wider folder
    /// its paths may reach into (see `Package::load_within`).
    pub fn push(&self, dir: &Path, root: Option<&Path>) -> Result<Revision> {
        let runtime = self.runtime()?;
        revision::push(&mut *self.store()?, &runtime, dir, root)
    }

    /// Pushes a package sent as one file (see [`archive::pack`]): unpacked into a fresh
    /// folder under HOME/tmp with at most `limit` bytes, read with the package folder's rule
    /// (its files inside it), removed afterwards whatever happened.
    pub fn push_archive(&self, bytes: &[u8], limit: u64) -> Result<Revision> {
        let tmp = self.location.home.join("tmp");
        let scratch = Scratch::new(&tmp, "package").map_err(Error::io(&tmp))?;
        let dir = archive::unpack(bytes, scratch.path(), limit)?;
        self.push(&dir, None)
    }

    /// Writes the package in `dir` as one `.tar.gz` (at `out`, or NAME-VERSION.tar.gz in the
    /// current folder), after checking that its component loads.
    pub fn pack(&self, dir: &Path, root: Option<&Path>, out: Option<&Path>) -> Result<Packed> {
        let package = Package::load_within(dir, root)?;
        package.compile(&*self.runtime()?)?;
        let (name, version) = (&package.manifest.name, &package.manifest.version);
        let path = out.map_or_else(
            || PathBuf::from(format!("{name}-{version}.tar.gz")),
            Path::to_path_buf,
        );
        let mut bytes = Vec::new();
        archive::pack(&package, &mut bytes)?;
        crate::files::write_atomically(&path, &bytes).map_err(Error::io(&path))?;
        Ok(Packed {
            package: name.clone(),
            version: version.clone(),
            path,
            bytes: bytes.len() as u64,
        })
    }

    /// Each package with its latest revision.
    pub fn packages(&self) -> Result<Vec<Revision>> {
        revision::list(&*self.store()?)
    }

    pub fn revisions(&self, package: &str) -> Result<Vec<Revision>> {
        revision::revisions(&*self.store()?, package)
    }

    // Services.

    pub fn deploy(&self, request: &Deploy) -> Result<Deployed> {
        let types = self.instance_types()?;
        let kind = request
            .instance_type
            .as_deref()
            .map(|name| types.get(name))
            .transpose()?;
        let (service, created) = service::deploy(&mut *self.store()?, request, kind)?;
        Ok(Deployed { service, created })
    }

    /// The instance types a deploy may name: built in, and the home's.
    pub fn instance_types(&self) -> Result<InstanceTypes> {
        InstanceTypes::of_home(&self.location.home)
    }

    pub fn services(&self) -> Result<Vec<Service>> {
        service::list(&*self.store()?)
    }

    pub fn service(&self, name: &str) -> Result<Service> {
        service::get(&*self.store()?, name)
    }

    pub fn set_paused(&self, name: &str, paused: bool) -> Result<Service> {
        service::set_paused(&mut *self.store()?, name, paused)
    }

    pub fn delete_service(&self, name: &str) -> Result<Deleted> {
        let canceled = service::delete(&mut *self.store()?, name)?;
        Ok(Deleted {
            service: name.to_string(),
            canceled,
        })
    }

    /// One pass of `prelabel watch`: build, and unless the result is what the service runs,
    /// push it and deploy it live. What the user got wrong (a failing build, a refused
    /// package or deploy) is a [`Pass`] that keeps the service as it is, not an error.
    pub fn watch_pass(&self, watch: &Watch) -> Result<Pass> {
        let serving = match self.service(&watch.service) {
            Ok(service) => Some(service),
            Err(Error::NotFound { .. }) => None,
            Err(e) => return Err(e),
        };
        let label = serving
            .as_ref()
            .map(|s| format!("{} revision {}", s.package, s.revision));
        let refused = |error: String| Pass::Refused {
            error,
            serving: label.clone(),
        };
        let built = match watch.build() {
            Ok(built) => built,
            Err(NotBuilt::Failed { command, status }) => {
                return Ok(Pass::BuildFailed {
                    command,
                    status,
                    serving: label,
                });
            }
            Err(e) => return Ok(refused(e.to_string())),
        };
        let package = match watch.package() {
            Ok(package) => package,
            Err(e) => return Ok(refused(e.to_string())),
        };
        if let Some(service) = &serving {
            let current =
                revision::revision(&*self.store()?, &service.package, Some(service.revision))?;
            if crate::catalog::watch::same(&package, &current) {
                return Ok(Pass::Unchanged {
                    serving: current.label(),
                    built,
                });
            }
        }
        // The package as read above: the folder is not read a second time.
        let runtime = self.runtime()?;
        let pushed = revision::push_package(&mut *self.store()?, &runtime, &package);
        let revision = match pushed {
            Ok(revision) => revision,
            Err(e) => return Ok(refused(e.to_string())),
        };
        let deploy = Deploy {
            package: revision.package.clone(),
            name: watch.service.clone(),
            revision: Some(revision.revision),
            ..Deploy::default()
        };
        match self.deploy(&deploy) {
            Ok(_) => Ok(Pass::Deployed {
                revision: Box::new(revision),
                was: label,
                built,
            }),
            Err(e) => Ok(refused(format!(
                "{} was pushed but not deployed: {e}",
                revision.label()
            ))),
        }
    }

    pub fn rollback(&self, name: &str) -> Result<Service> {
        service::rollback(&mut *self.store()?, name)
    }

    // Triggers.

    pub fn create_trigger(&self, request: &Create) -> Result<Trigger> {
        trigger::create(&mut *self.store()?, request)
    }

    pub fn triggers(&self) -> Result<Vec<Trigger>> {
        trigger::list(&*self.store()?)
    }

    pub fn delete_trigger(&self, name: &str) -> Result<()> {
        trigger::delete(&mut *self.store()?, name)
    }

    /// Stores a pipeline (read from its file by `Spec::from_file`, or sent over the API): a
    /// new pipeline, a new version, or nothing when it is the newest already.
    pub fn apply_pipeline(&self, spec: &Spec) -> Result<Applied> {
        pipeline::apply(&mut *self.store()?, spec)
    }

    pub fn pipelines(&self) -> Result<Vec<Pipeline>> {
        pipeline::list(&*self.store()?)
    }

    /// A pipeline with its graph and, per node, how many items wait, run, are done or failed.
    pub fn pipeline(&self, name: &str) -> Result<Shown> {
        pipeline::show(&*self.store()?, name)
    }

    /// The pipeline runs an item took part in, each with the nodes its path entered.
    pub fn item_paths(&self, item: i64) -> Result<Vec<RunPath>> {
        pipeline::paths(&*self.store()?, item)
    }

    /// Pauses (`true`: no new items enter it) or resumes a pipeline.
    pub fn pause_pipeline(&self, name: &str, paused: bool) -> Result<Pipeline> {
        pipeline::set_paused(&mut *self.store()?, name, paused)
    }

    pub fn delete_pipeline(&self, name: &str) -> Result<()> {
        pipeline::delete(&mut *self.store()?, name)
    }

    // Items and annotations.

    pub fn set_secret(&self, name: &str, value: &str) -> Result<Secret> {
        secret::set(&mut *self.store()?, name, value)
    }

    pub fn secrets(&self) -> Result<Vec<Secret>> {
        secret::list(&*self.store()?)
    }

    /// A package's init values as its instance receives them when it runs outside a service
    /// (`prelabel detect`): each secret input names a secret of this home, read now.
    pub fn reveal(
        &self,
        manifest: &crate::package::manifest::Manifest,
        init: BTreeMap<String, InputValue>,
    ) -> Result<BTreeMap<String, InputValue>> {
        if manifest.secrets().next().is_none() {
            return Ok(init);
        }
        let store = self.store()?;
        secret::check_init(&store, manifest, &init)?;
        secret::reveal(&store, manifest, &init)
    }

    pub fn delete_secret(&self, name: &str) -> Result<()> {
        secret::delete(&mut *self.store()?, name)
    }

    /// The labels a service gives (see [`predict::labels`]).
    pub fn labels(&self, service: &Service) -> Result<Vec<String>> {
        predict::labels(&*self.store()?, service)
    }
}
