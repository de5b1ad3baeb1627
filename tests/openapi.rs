//! openapi.yaml describes exactly the HTTP routes template.yaml serves.

use caas_tests::repo_root;
use std::collections::BTreeSet;

#[test]
fn openapi_paths_match_the_template_routes() {
    let template = caas_local::Template::load(repo_root().join("template.yaml")).unwrap();
    let served: BTreeSet<(String, String)> =
        template.http_routes().into_iter().map(|r| (r.method.to_uppercase(), r.path)).collect();
    let spec: serde_norway::Value =
        serde_norway::from_str(&std::fs::read_to_string(repo_root().join("openapi.yaml")).unwrap()).unwrap();
    let mut documented = BTreeSet::new();
    for (path, item) in spec["paths"].as_mapping().expect("paths") {
        for (method, _) in item.as_mapping().expect("path item") {
            let method = method.as_str().unwrap().to_uppercase();
            if ["GET", "POST", "PUT", "PATCH", "DELETE"].contains(&method.as_str()) {
                documented.insert((method, path.as_str().unwrap().to_owned()));
            }
        }
    }
    assert_eq!(documented, served, "openapi.yaml and template.yaml disagree on the routes");
}

/// The `Currency` enum is exactly the codes the API accepts.
#[test]
fn openapi_currencies_are_the_accepted_codes() {
    let spec: serde_norway::Value =
        serde_norway::from_str(&std::fs::read_to_string(repo_root().join("openapi.yaml")).unwrap()).unwrap();
    let listed: Vec<&str> = spec["components"]["schemas"]["Currency"]["enum"]
        .as_sequence()
        .expect("Currency enum")
        .iter()
        .map(|code| code.as_str().expect("a code"))
        .collect();
    let accepted: Vec<&str> = caas::money::Currency::codes().collect();
    assert_eq!(listed, accepted, "openapi.yaml's Currency enum and caas::money disagree");
}
