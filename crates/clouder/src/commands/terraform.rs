//! `export-terraform`: the cluster's graph as a Terraform module.

use super::{context, converge::named_or_file};
use crate::cli::{ExportTerraformArgs, Global};
use crate::home::Home;
use crate::output::{emit, table};
use crate::provider;
use anyhow::{Context as _, Result};
use serde::Serialize;

#[derive(Serialize)]
struct Exported {
    cluster: String,
    dir: String,
    files: Vec<String>,
    resources: usize,
    provider: String,
}

pub fn export(home: &Home, g: &Global, args: ExportTerraformArgs) -> Result<()> {
    let cluster = named_or_file(home, args.name, args.file.as_deref())?;
    let store = home.store()?;
    let ctx = context(home, &store, cluster.spec.context.as_deref())?;
    let (scope, graph) = provider::offline(&cluster, ctx.as_ref())?;
    let doc = clouder_aws::terraform::document(&scope, &cluster, &graph)?;
    std::fs::create_dir_all(&args.dir)
        .with_context(|| format!("creating {}", args.dir.display()))?;
    let mut files = Vec::new();
    for (name, text) in doc.files() {
        let path = args.dir.join(name);
        std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
        files.push(name.to_string());
    }
    let out = Exported {
        cluster: cluster.name().to_string(),
        dir: args.dir.display().to_string(),
        files,
        resources: doc.resource.values().map(|blocks| blocks.len()).sum(),
        provider: format!(
            "hashicorp/aws {}",
            clouder_aws::terraform::AWS_PROVIDER_VERSION
        ),
    };
    emit(g.output, &out, || {
        let rows: Vec<Vec<String>> = out.files.iter().map(|f| vec![f.clone()]).collect();
        table(&["FILE"], &rows)
            + &format!(
                "Wrote {} Terraform resources for {} ({}) to {}.\nNext: terraform -chdir={} init && terraform -chdir={} apply\n",
                out.resources, out.cluster, out.provider, out.dir, out.dir, out.dir
            )
    })
}
