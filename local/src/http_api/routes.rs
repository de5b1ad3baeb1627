//! The HTTP API's route table: a request is matched to a route like API Gateway
//! matches it (the most specific one wins, `$default` catches the rest).

use std::collections::BTreeMap;

use percent_encoding::percent_decode_str;

use crate::template::HttpRoute;

/// A route with its path split into segments.
#[derive(Debug, Clone)]
pub struct Route {
    pub route: HttpRoute,
    segments: Vec<Segment>,
}

#[derive(Debug, Clone, PartialEq)]
enum Segment {
    Literal(String),
    Param(String),
    /// `{name+}`: the rest of the path.
    Greedy(String),
}

/// The routes of the API, as served.
#[derive(Debug, Clone)]
pub struct RouteTable {
    routes: Vec<Route>,
}

/// A request matched to a route.
#[derive(Debug, PartialEq)]
pub struct Matched<'a> {
    pub route: &'a HttpRoute,
    pub path_parameters: BTreeMap<String, String>,
}

impl RouteTable {
    pub fn new(routes: Vec<HttpRoute>) -> Self {
        let routes = routes
            .into_iter()
            .map(|route| {
                let segments = split(&route.path)
                    .map(|s| match s.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
                        Some(name) => match name.strip_suffix('+') {
                            Some(greedy) => Segment::Greedy(greedy.to_owned()),
                            None => Segment::Param(name.to_owned()),
                        },
                        None => Segment::Literal(s.to_owned()),
                    })
                    .collect();
                Route { route, segments }
            })
            .collect();
        RouteTable { routes }
    }

    pub fn routes(&self) -> Vec<HttpRoute> {
        self.routes.iter().map(|r| r.route.clone()).collect()
    }

    /// API Gateway's choice: an exact method beats `ANY`, more literal segments beat
    /// parameters, parameters beat a greedy tail; `$default` when nothing else matches.
    pub fn find(&self, method: &str, path: &str) -> Option<Matched<'_>> {
        let segments: Vec<&str> = split(path).collect();
        let mut best: Option<((usize, usize, bool), Matched<'_>)> = None;
        for route in &self.routes {
            let method_ok = route.route.method == "ANY" || route.route.method.eq_ignore_ascii_case(method);
            if !method_ok || route.route.path == "$default" {
                continue;
            }
            let Some((literals, params)) = match_segments(&route.segments, &segments) else {
                continue;
            };
            let rank = (literals, params.len(), route.route.method != "ANY");
            if best.as_ref().is_none_or(|(r, _)| rank > *r) {
                best = Some((rank, Matched { route: &route.route, path_parameters: params }));
            }
        }
        best.map(|(_, m)| m).or_else(|| {
            self.routes
                .iter()
                .find(|r| r.route.path == "$default")
                .map(|r| Matched { route: &r.route, path_parameters: BTreeMap::new() })
        })
    }
}

fn split(path: &str) -> impl Iterator<Item = &str> {
    path.split('/').filter(|s| !s.is_empty())
}

/// Literal segments matched and the parameters, when `route` matches `path`.
fn match_segments(route: &[Segment], path: &[&str]) -> Option<(usize, BTreeMap<String, String>)> {
    let mut params = BTreeMap::new();
    let mut literals = 0;
    for (i, segment) in route.iter().enumerate() {
        match segment {
            Segment::Greedy(name) => {
                if i >= path.len() {
                    return None;
                }
                let rest: Vec<String> = path[i..].iter().map(|s| percent_decode(s)).collect();
                params.insert(name.clone(), rest.join("/"));
                return Some((literals, params));
            }
            Segment::Literal(text) => {
                if path.get(i) != Some(&text.as_str()) {
                    return None;
                }
                literals += 1;
            }
            Segment::Param(name) => {
                let value = path.get(i)?;
                params.insert(name.clone(), percent_decode(value));
            }
        }
    }
    (route.len() == path.len()).then_some((literals, params))
}

/// `%XX` and nothing else (`+` stays a plus, as in a path).
fn percent_decode(text: &str) -> String {
    percent_decode_str(text).decode_utf8_lossy().into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn route(method: &str, path: &str, function: &str) -> HttpRoute {
        HttpRoute { method: method.into(), path: path.into(), function_logical_id: function.into() }
    }

    #[test]
    fn most_specific_route_wins() {
        let table = RouteTable::new(vec![
            route("GET", "/v1/accounts/{id}", "Get"),
            route("GET", "/v1/accounts/{id}/transactions", "List"),
            route("POST", "/v1/payments/{id}/capture", "Capture"),
            route("ANY", "/v1/payments/{id}/capture", "Any"),
            route("GET", "/v1/accounts/me", "Me"),
            route("GET", "/files/{path+}", "Files"),
        ]);
        let found = |m: &str, p: &str| {
            table.find(m, p).map(|m| (m.route.function_logical_id.clone(), m.path_parameters))
        };
        let params =
            |pairs: &[(&str, &str)]| pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        assert_eq!(found("GET", "/v1/accounts/a%201"), Some(("Get".into(), params(&[("id", "a 1")]))));
        assert_eq!(found("GET", "/v1/accounts/me"), Some(("Me".into(), params(&[]))));
        assert_eq!(
            found("GET", "/v1/accounts/a1/transactions"),
            Some(("List".into(), params(&[("id", "a1")])))
        );
        assert_eq!(
            found("POST", "/v1/payments/p1/capture"),
            Some(("Capture".into(), params(&[("id", "p1")])))
        );
        assert_eq!(found("DELETE", "/v1/payments/p1/capture"), Some(("Any".into(), params(&[("id", "p1")]))));
        assert_eq!(found("GET", "/files/a/b.txt"), Some(("Files".into(), params(&[("path", "a/b.txt")]))));
        assert_eq!(found("POST", "/v1/accounts/a1"), None);
        assert_eq!(found("GET", "/v1/accounts"), None);
    }

    #[test]
    fn default_route_catches_the_rest() {
        let table = RouteTable::new(vec![route("GET", "/a", "A"), route("ANY", "$default", "Fallback")]);
        assert_eq!(table.find("GET", "/a").map(|m| m.route.function_logical_id.clone()), Some("A".into()));
        assert_eq!(
            table.find("PUT", "/zzz").map(|m| m.route.function_logical_id.clone()),
            Some("Fallback".into())
        );
    }
}
