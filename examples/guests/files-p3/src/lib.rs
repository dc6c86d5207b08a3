//! A WASI 0.3 HTTP file service: `PUT /NAME` stores the request body as
//! the file `/files/NAME`, `GET /NAME` answers with it (404 if there is
//! none). Bodies go straight between HTTP and the file as streams: the
//! request's body stream is what `write-via-stream` drains, and the file's
//! `read-via-stream` is the response's body.

use wasip3::filesystem::preopens;
use wasip3::filesystem::types::{
    Descriptor, DescriptorFlags as DF, ErrorCode as FsError, OpenFlags as OF, PathFlags as PF,
};
use wasip3::http::types::{ErrorCode, Fields, Method, Request, Response};
use wasip3::{wit_future, wit_stream};

wasip3::http::service::export!(Files);

struct Files;

fn respond(status: u16, body: Option<wasip3::wit_bindgen::StreamReader<u8>>) -> Response {
    let (trailers_tx, trailers_rx) = wit_future::new(|| Ok(None));
    drop(trailers_tx);
    let (response, _sent) = Response::new(Fields::new(), body, trailers_rx);
    response.set_status_code(status).expect("a valid status");
    response
}

fn text(status: u16, body: String) -> Response {
    let (mut tx, rx) = wit_stream::new();
    wasip3::spawn_local(async move {
        tx.write_all(body.into_bytes()).await;
    });
    respond(status, Some(rx))
}

async fn dir() -> Result<Descriptor, FsError> {
    let (root, _) = preopens::get_directories()
        .into_iter()
        .find(|(_, n)| n == "/")
        .ok_or(FsError::NoEntry)?;
    let _ = root.create_directory_at("files".into()).await;
    root.open_at(
        PF::empty(),
        "files".into(),
        OF::DIRECTORY,
        DF::READ | DF::MUTATE_DIRECTORY,
    )
    .await
}

impl wasip3::exports::http::handler::Guest for Files {
    async fn handle(request: Request) -> Result<Response, ErrorCode> {
        let name = request
            .get_path_with_query()
            .unwrap_or_default()
            .trim_start_matches('/')
            .to_string();
        if name.is_empty() || name.contains('/') {
            return Ok(text(400, "one name, no slashes\n".into()));
        }
        let dir = match dir().await {
            Ok(d) => d,
            Err(e) => return Ok(text(500, format!("{e:?}\n"))),
        };
        match request.get_method() {
            Method::Put => {
                let flags = OF::CREATE | OF::TRUNCATE;
                let file = match dir.open_at(PF::empty(), name, flags, DF::WRITE).await {
                    Ok(f) => f,
                    Err(e) => return Ok(text(500, format!("{e:?}\n"))),
                };
                let (done_tx, done_rx) = wit_future::new(|| Ok(()));
                let (body, _trailers) = Request::consume_body(request, done_rx);
                let written = file.write_via_stream(body, 0).await;
                drop(done_tx);
                Ok(match written {
                    Ok(()) => respond(201, None),
                    Err(e) => text(500, format!("{e:?}\n")),
                })
            }
            Method::Get => match dir.open_at(PF::empty(), name, OF::empty(), DF::READ).await {
                Ok(file) => {
                    let (body, _done) = file.read_via_stream(0);
                    Ok(respond(200, Some(body)))
                }
                Err(FsError::NoEntry) => Ok(text(404, "no such file\n".into())),
                Err(e) => Ok(text(500, format!("{e:?}\n"))),
            },
            _ => Ok(text(405, "PUT or GET\n".into())),
        }
    }
}
