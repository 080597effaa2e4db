"""The ``/v2`` routes: method, path, operationId and the handler that serves each.

The handler is an attribute of one of the sandbox's handler objects, picked by the sets
below (credentials and connections are the ``Api``'s).
"""

from __future__ import annotations

ROUTES = (
    ("GET", "/v2/telephony_credentials", "FindTelephonyCredentials", "find_credentials"),
    ("POST", "/v2/telephony_credentials", "CreateTelephonyCredential", "create_credential"),
    ("GET", "/v2/telephony_credentials/{id}", "GetTelephonyCredential", "get_credential"),
    ("PATCH", "/v2/telephony_credentials/{id}", "UpdateTelephonyCredential", "update_credential"),
    ("DELETE", "/v2/telephony_credentials/{id}", "DeleteTelephonyCredential", "delete_credential"),
    (
        "POST",
        "/v2/telephony_credentials/{id}/token",
        "CreateTelephonyCredentialToken",
        "create_token",
    ),
    ("GET", "/v2/credential_connections", "ListCredentialConnections", "list_connections"),
    ("POST", "/v2/credential_connections", "CreateCredentialConnection", "create_connection"),
    (
        "GET",
        "/v2/credential_connections/{id}",
        "RetrieveCredentialConnection",
        "retrieve_connection",
    ),
    (
        "DELETE",
        "/v2/credential_connections/{id}",
        "DeleteCredentialConnection",
        "delete_connection",
    ),
    ("POST", "/v2/calls", "DialCall", "dial"),
    ("GET", "/v2/calls/{call_control_id}", "RetrieveCallStatus", "retrieve_call"),
    ("POST", "/v2/calls/{call_control_id}/actions/hangup", "HangupCall", "hangup"),
    ("POST", "/v2/calls/{call_control_id}/actions/record_start", "StartCallRecord", "record_start"),
    ("POST", "/v2/calls/{call_control_id}/actions/record_stop", "StopCallRecording", "record_stop"),
    (
        "POST",
        "/v2/calls/{call_control_id}/actions/record_pause",
        "PauseCallRecording",
        "record_pause",
    ),
    (
        "POST",
        "/v2/calls/{call_control_id}/actions/record_resume",
        "ResumeCallRecording",
        "record_resume",
    ),
    ("GET", "/v2/recordings", "GetRecordings", "index"),
    ("GET", "/v2/recordings/{recording_id}", "GetRecording", "retrieve"),
    ("DELETE", "/v2/recordings/{recording_id}", "DeleteRecording", "delete"),
    ("POST", "/v2/recordings/actions/delete", "DeleteRecordings", "delete_many"),
)
CALL_HANDLERS = {"dial", "retrieve_call", "hangup"}
RECORD_HANDLERS = {"record_start", "record_stop", "record_pause", "record_resume"}
RECORDINGS_HANDLERS = {"index", "retrieve", "delete", "delete_many"}
