//! Pulls a model from an Ollama-protocol registry (`registry.ollama.ai` and any other):
//! `GET /v2/<namespace>/<model>/manifests/<tag>`, then each blob by digest
//! (`/v2/<namespace>/<model>/blobs/<digest>`, following redirects to a CDN), then the
//! manifest, written last so the model appears only once every blob is in place.

use crate::digest::Digest;
use crate::http::{upstream, Http};
use crate::manifest::{Manifest, MANIFEST_MEDIA_TYPE};
use crate::name::ModelName;
use crate::{Progress, Store, StoreError, UpstreamFailure};

impl Store {
    /// `insecure` speaks plain HTTP instead of HTTPS (a registry on this machine or network).
    /// A pull that fails removes the blobs it stored that no model refers to, so nothing of
    /// it is left behind; a blob that was in the store before is never touched.
    pub fn pull_from_registry(
        &self,
        name: &ModelName,
        insecure: bool,
        progress: &mut dyn FnMut(Progress<'_>),
    ) -> Result<Manifest, StoreError> {
        let mut placed = Vec::new();
        let result = self.pull_blobs_and_manifest(name, insecure, &mut placed, progress);
        if result.is_err() {
            self.discard_unreferenced(&placed);
        }
        result
    }

    fn pull_blobs_and_manifest(
        &self,
        name: &ModelName,
        insecure: bool,
        placed: &mut Vec<Digest>,
        progress: &mut dyn FnMut(Progress<'_>),
    ) -> Result<Manifest, StoreError> {
        let http = Http::new();
        progress(Progress::Step("pulling manifest"));
        let (base, manifest) = registry_manifest(&http, name, insecure)?;
        // The config last: a blob's age for orphan collection starts when it is complete,
        // and the small config fetched first would age through a long model download,
        // unreferenced until the manifest is written.
        let blobs = manifest.layers.iter().chain(std::iter::once(&manifest.config));
        for layer in blobs {
            let url = format!("{base}/blobs/{}", layer.digest);
            if self.download_blob(&http, &url, &layer.digest, layer.size, progress)? {
                placed.push(layer.digest.clone());
            }
        }
        progress(Progress::Step("writing manifest"));
        self.write_manifest(name, &manifest)?;
        Ok(manifest)
    }
}

/// The base URL of `name`'s repository on its registry (`.../v2/<namespace>/<model>`) and
/// its manifest; a registry without the model says so as [`StoreError::NoSuchModel`].
pub(crate) fn registry_manifest(
    http: &Http,
    name: &ModelName,
    insecure: bool,
) -> Result<(String, Manifest), StoreError> {
    let scheme = if insecure { "http" } else { "https" };
    let base = format!("{scheme}://{}/v2/{}/{}", name.host, name.namespace, name.model);
    let manifest_url = format!("{base}/manifests/{}", name.tag);
    let bytes = http.get_bytes(&manifest_url, MANIFEST_MEDIA_TYPE).map_err(|e| no_such_model(e, &name.to_string()))?;
    let manifest: Manifest = serde_json::from_slice(&bytes).map_err(|e| {
        upstream(
            &manifest_url,
            UpstreamFailure::Invalid(format!("the registry's manifest for {name} is not valid: {e}")),
        )
    })?;
    Ok((base, manifest))
}

/// A 404 for a model's own listing or manifest means the upstream has no such model.
pub(crate) fn no_such_model(error: StoreError, name: &str) -> StoreError {
    match error {
        StoreError::Upstream { failure: UpstreamFailure::Status(404), host, .. } => {
            StoreError::NoSuchModel { name: name.to_string(), host }
        }
        e => e,
    }
}
