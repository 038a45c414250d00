//! The live routes the edge answers itself: a stream's socket ticket and the socket. The edge
//! holds every socket and sends each message on as a signed `process_points` request, so the
//! backend stays request/response; a request for these routes that reaches the backend is told
//! where they live.

use shared::ErrorCode;

use super::error::ApiError;

/// `POST /api/v1/ws-tickets` (the edge seals tickets; the backend never sees one).
pub async fn ws_ticket() -> ApiError {
    ApiError::detail(
        ErrorCode::NotImplemented,
        "socket tickets are issued by the edge; ask the edge",
    )
}

/// `GET /api/v1/streams/{stream}/ws` (the edge holds the socket).
pub async fn stream_socket() -> ApiError {
    ApiError::detail(
        ErrorCode::NotImplemented,
        "stream sockets are held by the edge; open the socket at the edge",
    )
}
