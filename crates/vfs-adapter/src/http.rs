//! `wasi:http` passed through to the host (the `http` build). Bodies are
//! `wasi:io` streams and futures hand out pollables, which must be the
//! adapter's (see io.rs); every other resource is the host's, wrapped.
//!
//! Incoming requests arrive at the app's handler through the bridge that
//! `larder compose` instantiates after the app: it stashes the host's
//! request here and takes back the wrappers (see `http-bridge` in
//! wit/larder.wit).

use crate::exports::larder::vfs::http_bridge;
use crate::exports::wasi::http::{outgoing_handler as out_exp, types as exp};
use crate::exports::wasi::io::error::ErrorBorrow;
use crate::exports::wasi::io::poll::Pollable;
use crate::exports::wasi::io::streams::{InputStream, OutputStream};
use crate::io::{wrap_pollable, Input, IoError, Output};
use crate::wasi::http::{outgoing_handler as host_out, types as host};
use crate::Adapter;
use std::cell::RefCell;

pub struct Fields(host::Fields);
pub struct IncomingRequest(host::IncomingRequest);
pub struct OutgoingRequest(host::OutgoingRequest);
pub struct RequestOptions(host::RequestOptions);
pub struct ResponseOutparam(host::ResponseOutparam);
pub struct IncomingResponse(host::IncomingResponse);
pub struct IncomingBody(host::IncomingBody);
pub struct FutureTrailers(host::FutureTrailers);
pub struct OutgoingResponse(host::OutgoingResponse);
pub struct OutgoingBody(host::OutgoingBody);
pub struct FutureIncomingResponse(host::FutureIncomingResponse);

// The import and export sides are the same WIT generated twice; values
// are copied across case by case, in both directions.

/// `error-code` from `$a` to `$b` (the two generated modules): unit cases,
/// cases whose payload is the same type on both sides, then the rest.
macro_rules! error_code {
    ($f:ident: $a:ident -> $b:ident, [$($unit:ident),*], [$($same:ident),*]) => {
        fn $f(e: $a::ErrorCode) -> $b::ErrorCode {
            use $a::ErrorCode as A;
            use $b::ErrorCode as B;
            let size = |p: $a::FieldSizePayload| $b::FieldSizePayload {
                field_name: p.field_name,
                field_size: p.field_size,
            };
            match e {
                $(A::$unit => B::$unit,)*
                $(A::$same(v) => B::$same(v),)*
                A::DnsError(p) => B::DnsError($b::DnsErrorPayload {
                    rcode: p.rcode,
                    info_code: p.info_code,
                }),
                A::TlsAlertReceived(p) => B::TlsAlertReceived($b::TlsAlertReceivedPayload {
                    alert_id: p.alert_id,
                    alert_message: p.alert_message,
                }),
                A::HttpRequestHeaderSize(p) => B::HttpRequestHeaderSize(p.map(size)),
                A::HttpRequestTrailerSize(p) => B::HttpRequestTrailerSize(size(p)),
                A::HttpResponseHeaderSize(p) => B::HttpResponseHeaderSize(size(p)),
                A::HttpResponseTrailerSize(p) => B::HttpResponseTrailerSize(size(p)),
            }
        }
    };
}

/// Both directions over one list of cases.
macro_rules! error_codes {
    ($units:tt, $same:tt) => {
        error_code!(code: host -> exp, $units, $same);
        error_code!(code_in: exp -> host, $units, $same);
    };
}

error_codes!(
    [
        DnsTimeout,
        DestinationNotFound,
        DestinationUnavailable,
        DestinationIpProhibited,
        DestinationIpUnroutable,
        ConnectionRefused,
        ConnectionTerminated,
        ConnectionTimeout,
        ConnectionReadTimeout,
        ConnectionWriteTimeout,
        ConnectionLimitReached,
        TlsProtocolError,
        TlsCertificateError,
        HttpRequestDenied,
        HttpRequestLengthRequired,
        HttpRequestMethodInvalid,
        HttpRequestUriInvalid,
        HttpRequestUriTooLong,
        HttpResponseIncomplete,
        HttpResponseTimeout,
        HttpUpgradeFailed,
        HttpProtocolError,
        LoopDetected,
        ConfigurationError
    ],
    [
        HttpRequestBodySize,
        HttpRequestHeaderSectionSize,
        HttpRequestTrailerSectionSize,
        HttpResponseHeaderSectionSize,
        HttpResponseBodySize,
        HttpResponseTrailerSectionSize,
        HttpResponseTransferCoding,
        HttpResponseContentCoding,
        InternalError
    ]
);

/// `method` or `scheme` from `$a` to `$b`.
macro_rules! simple_variant {
    ($f:ident: $t:ident, $a:ident -> $b:ident: $($unit:ident),*) => {
        fn $f(v: $a::$t) -> $b::$t {
            match v {
                $($a::$t::$unit => $b::$t::$unit,)*
                $a::$t::Other(s) => $b::$t::Other(s),
            }
        }
    };
}

simple_variant!(method: Method, host -> exp: Get, Head, Post, Put, Delete, Connect, Options, Trace, Patch);
simple_variant!(method_in: Method, exp -> host: Get, Head, Post, Put, Delete, Connect, Options, Trace, Patch);
simple_variant!(scheme: Scheme, host -> exp: Http, Https);
simple_variant!(scheme_in: Scheme, exp -> host: Http, Https);

fn header_error(e: host::HeaderError) -> exp::HeaderError {
    match e {
        host::HeaderError::InvalidSyntax => exp::HeaderError::InvalidSyntax,
        host::HeaderError::Forbidden => exp::HeaderError::Forbidden,
        host::HeaderError::Immutable => exp::HeaderError::Immutable,
    }
}

fn fields(f: host::Fields) -> exp::Fields {
    exp::Fields::new(Fields(f))
}

fn unwrap_fields(f: exp::Fields) -> host::Fields {
    f.into_inner::<Fields>().0
}

fn incoming_body(b: host::IncomingBody) -> exp::IncomingBody {
    exp::IncomingBody::new(IncomingBody(b))
}

fn outgoing_body(b: host::OutgoingBody) -> exp::OutgoingBody {
    exp::OutgoingBody::new(OutgoingBody(b))
}

fn incoming_response(r: host::IncomingResponse) -> exp::IncomingResponse {
    exp::IncomingResponse::new(IncomingResponse(r))
}

impl exp::Guest for Adapter {
    type Fields = Fields;
    type IncomingRequest = IncomingRequest;
    type OutgoingRequest = OutgoingRequest;
    type RequestOptions = RequestOptions;
    type ResponseOutparam = ResponseOutparam;
    type IncomingResponse = IncomingResponse;
    type IncomingBody = IncomingBody;
    type FutureTrailers = FutureTrailers;
    type OutgoingResponse = OutgoingResponse;
    type OutgoingBody = OutgoingBody;
    type FutureIncomingResponse = FutureIncomingResponse;

    fn http_error_code(err: ErrorBorrow<'_>) -> Option<exp::ErrorCode> {
        match err.get::<IoError>() {
            IoError::Host(e) => host::http_error_code(e).map(code),
            // Errors of file streams are never HTTP errors.
            IoError::Fs(_) => None,
        }
    }
}

impl exp::GuestFields for Fields {
    fn new() -> Self {
        Fields(host::Fields::new())
    }
    fn from_list(
        entries: Vec<(exp::FieldName, exp::FieldValue)>,
    ) -> Result<exp::Fields, exp::HeaderError> {
        host::Fields::from_list(&entries)
            .map(fields)
            .map_err(header_error)
    }
    fn get(&self, name: exp::FieldName) -> Vec<exp::FieldValue> {
        self.0.get(&name)
    }
    fn has(&self, name: exp::FieldName) -> bool {
        self.0.has(&name)
    }
    fn set(
        &self,
        name: exp::FieldName,
        value: Vec<exp::FieldValue>,
    ) -> Result<(), exp::HeaderError> {
        self.0.set(&name, &value).map_err(header_error)
    }
    fn delete(&self, name: exp::FieldName) -> Result<(), exp::HeaderError> {
        self.0.delete(&name).map_err(header_error)
    }
    fn append(&self, name: exp::FieldName, value: exp::FieldValue) -> Result<(), exp::HeaderError> {
        self.0.append(&name, &value).map_err(header_error)
    }
    fn entries(&self) -> Vec<(exp::FieldName, exp::FieldValue)> {
        self.0.entries()
    }
    fn clone(&self) -> exp::Fields {
        fields(self.0.clone())
    }
}

impl exp::GuestIncomingRequest for IncomingRequest {
    fn method(&self) -> exp::Method {
        method(self.0.method())
    }
    fn path_with_query(&self) -> Option<String> {
        self.0.path_with_query()
    }
    fn scheme(&self) -> Option<exp::Scheme> {
        self.0.scheme().map(scheme)
    }
    fn authority(&self) -> Option<String> {
        self.0.authority()
    }
    fn headers(&self) -> exp::Headers {
        fields(self.0.headers())
    }
    fn consume(&self) -> Result<exp::IncomingBody, ()> {
        self.0.consume().map(incoming_body)
    }
}

impl exp::GuestOutgoingRequest for OutgoingRequest {
    fn new(headers: exp::Headers) -> Self {
        OutgoingRequest(host::OutgoingRequest::new(unwrap_fields(headers)))
    }
    fn body(&self) -> Result<exp::OutgoingBody, ()> {
        self.0.body().map(outgoing_body)
    }
    fn method(&self) -> exp::Method {
        method(self.0.method())
    }
    fn set_method(&self, m: exp::Method) -> Result<(), ()> {
        self.0.set_method(&method_in(m))
    }
    fn path_with_query(&self) -> Option<String> {
        self.0.path_with_query()
    }
    fn set_path_with_query(&self, p: Option<String>) -> Result<(), ()> {
        self.0.set_path_with_query(p.as_deref())
    }
    fn scheme(&self) -> Option<exp::Scheme> {
        self.0.scheme().map(scheme)
    }
    fn set_scheme(&self, s: Option<exp::Scheme>) -> Result<(), ()> {
        self.0.set_scheme(s.map(scheme_in).as_ref())
    }
    fn authority(&self) -> Option<String> {
        self.0.authority()
    }
    fn set_authority(&self, a: Option<String>) -> Result<(), ()> {
        self.0.set_authority(a.as_deref())
    }
    fn headers(&self) -> exp::Headers {
        fields(self.0.headers())
    }
}

impl exp::GuestRequestOptions for RequestOptions {
    fn new() -> Self {
        RequestOptions(host::RequestOptions::new())
    }
    fn connect_timeout(&self) -> Option<exp::Duration> {
        self.0.connect_timeout()
    }
    fn set_connect_timeout(&self, d: Option<exp::Duration>) -> Result<(), ()> {
        self.0.set_connect_timeout(d)
    }
    fn first_byte_timeout(&self) -> Option<exp::Duration> {
        self.0.first_byte_timeout()
    }
    fn set_first_byte_timeout(&self, d: Option<exp::Duration>) -> Result<(), ()> {
        self.0.set_first_byte_timeout(d)
    }
    fn between_bytes_timeout(&self) -> Option<exp::Duration> {
        self.0.between_bytes_timeout()
    }
    fn set_between_bytes_timeout(&self, d: Option<exp::Duration>) -> Result<(), ()> {
        self.0.set_between_bytes_timeout(d)
    }
}

impl exp::GuestResponseOutparam for ResponseOutparam {
    fn set(param: exp::ResponseOutparam, response: Result<exp::OutgoingResponse, exp::ErrorCode>) {
        let response = response
            .map(|r| r.into_inner::<OutgoingResponse>().0)
            .map_err(code_in);
        host::ResponseOutparam::set(param.into_inner::<ResponseOutparam>().0, response);
    }
}

impl exp::GuestIncomingResponse for IncomingResponse {
    fn status(&self) -> exp::StatusCode {
        self.0.status()
    }
    fn headers(&self) -> exp::Headers {
        fields(self.0.headers())
    }
    fn consume(&self) -> Result<exp::IncomingBody, ()> {
        self.0.consume().map(incoming_body)
    }
}

impl exp::GuestIncomingBody for IncomingBody {
    fn stream(&self) -> Result<InputStream, ()> {
        let s = self.0.stream()?;
        Ok(InputStream::new(Input::Host(s)))
    }
    fn finish(this: exp::IncomingBody) -> exp::FutureTrailers {
        let f = host::IncomingBody::finish(this.into_inner::<IncomingBody>().0);
        exp::FutureTrailers::new(FutureTrailers(f))
    }
}

impl exp::GuestFutureTrailers for FutureTrailers {
    fn subscribe(&self) -> Pollable {
        wrap_pollable(self.0.subscribe())
    }
    #[allow(clippy::type_complexity)]
    fn get(&self) -> Option<Result<Result<Option<exp::Trailers>, exp::ErrorCode>, ()>> {
        self.0
            .get()
            .map(|r| r.map(|r| r.map(|t| t.map(fields)).map_err(code)))
    }
}

impl exp::GuestOutgoingResponse for OutgoingResponse {
    fn new(headers: exp::Headers) -> Self {
        OutgoingResponse(host::OutgoingResponse::new(unwrap_fields(headers)))
    }
    fn status_code(&self) -> exp::StatusCode {
        self.0.status_code()
    }
    fn set_status_code(&self, status: exp::StatusCode) -> Result<(), ()> {
        self.0.set_status_code(status)
    }
    fn headers(&self) -> exp::Headers {
        fields(self.0.headers())
    }
    fn body(&self) -> Result<exp::OutgoingBody, ()> {
        self.0.body().map(outgoing_body)
    }
}

impl exp::GuestOutgoingBody for OutgoingBody {
    fn write(&self) -> Result<OutputStream, ()> {
        let s = self.0.write()?;
        Ok(OutputStream::new(Output::Host(s)))
    }
    fn finish(
        this: exp::OutgoingBody,
        trailers: Option<exp::Trailers>,
    ) -> Result<(), exp::ErrorCode> {
        host::OutgoingBody::finish(
            this.into_inner::<OutgoingBody>().0,
            trailers.map(unwrap_fields),
        )
        .map_err(code)
    }
}

impl exp::GuestFutureIncomingResponse for FutureIncomingResponse {
    fn subscribe(&self) -> Pollable {
        wrap_pollable(self.0.subscribe())
    }
    #[allow(clippy::type_complexity)]
    fn get(&self) -> Option<Result<Result<exp::IncomingResponse, exp::ErrorCode>, ()>> {
        self.0
            .get()
            .map(|r| r.map(|r| r.map(incoming_response).map_err(code)))
    }
}

impl out_exp::Guest for Adapter {
    fn handle(
        request: exp::OutgoingRequest,
        options: Option<exp::RequestOptions>,
    ) -> Result<exp::FutureIncomingResponse, exp::ErrorCode> {
        let request = request.into_inner::<OutgoingRequest>().0;
        let options = options.map(|o| o.into_inner::<RequestOptions>().0);
        host_out::handle(request, options)
            .map(|f| exp::FutureIncomingResponse::new(FutureIncomingResponse(f)))
            .map_err(code)
    }
}

thread_local! {
    /// The host's request, between the bridge's two calls.
    static STASHED: RefCell<Option<(host::IncomingRequest, host::ResponseOutparam)>> =
        const { RefCell::new(None) };
}

impl crate::Guest for Adapter {
    fn stash_incoming(request: host::IncomingRequest, response_out: host::ResponseOutparam) {
        STASHED.set(Some((request, response_out)));
    }
}

impl http_bridge::Guest for Adapter {
    fn take_incoming() -> (exp::IncomingRequest, exp::ResponseOutparam) {
        let (request, out) = STASHED
            .take()
            .expect("larder: the HTTP bridge takes a request it stashed first");
        (
            exp::IncomingRequest::new(IncomingRequest(request)),
            exp::ResponseOutparam::new(ResponseOutparam(out)),
        )
    }
}
