//! The incident as an EIDO (Emergency Incident Data Object, NENA-STA-021) JSON document,
//! the open format for handing an incident to another dispatch centre.
//!
//! What goes out: the incident (type, status, priority, disposition), where (a PIDF-LO
//! point in WGS84 and the address), the call (when, how urgent), the agency and the call
//! taker, the units sent with their statuses, the timeline as notes, and a merge record for
//! a merged duplicate. What does not: the caller's name and phone — personal data leaves
//! only through the audited caller read, never in an exchange document.
//!
//! EIDO's registries (incident types, unit statuses…) are NENA's; our codes travel in the
//! `…InternalCode/InternalText` fields and a best-fitting registry word in the
//! `…CommonRegistryText` ones.

use axum::extract::State;
use fangkong_core::codes::CodeKind;
use fangkong_core::dispatch::{Incident, IncidentStatus, TimelineEntry, UnitStatus};
use serde_json::{Value, json};

use crate::AppState;
use crate::api::incidents::IncidentPath;
use crate::api::rfc3339;
use crate::auth::UserSession;
use crate::error::{ApiError, ErrorBody};
use crate::extract::{Json, Path};

/// The urn of an incident, as EIDO identifies incidents across centres.
fn incident_urn(uid: &str, agency: &str) -> String {
    format!("urn:emergency:uid:incidentid:{uid}:{agency}")
}

/// A NENA Incident Type registry word for our top-level category.
fn common_incident_type(category: &str) -> &'static str {
    match category {
        "03" => "Traffic",
        "04" => "Fire",
        "05" => "Medical",
        _ => "Law Enforcement",
    }
}

/// A NENA unit-status word for our unit statuses.
fn common_unit_status(status: UnitStatus) -> &'static str {
    match status {
        UnitStatus::Available => "Available",
        UnitStatus::Dispatched => "Dispatched",
        UnitStatus::EnRoute => "Enroute",
        UnitStatus::OnScene => "OnScene",
        UnitStatus::Returning => "Returning",
        UnitStatus::OffDuty => "OffDuty",
        UnitStatus::OutOfService => "OutOfService",
    }
}

/// The EIDO document of an incident. `type_name` is the incident type's English name;
/// `units` the call sign and mode of each unit sent (when known).
pub fn eido_document(
    incident: &Incident,
    timeline: &[(i64, TimelineEntry)],
    type_name: &str,
    units: &[(String, String, String)],
    merged_into_uid: Option<&str>,
    agency: &str,
) -> Value {
    let updated = rfc3339(incident.updated_at);
    let agency_ref = json!({"$ref": agency});
    let prologue =
        |id: String, at: &str| json!({"$id": id, "lastUpdateTimeStamp": at, "updatedByAgencyReference": agency_ref});
    let with = |mut base: Value, extra: Value| {
        if let (Some(base), Some(extra)) = (base.as_object_mut(), extra.as_object()) {
            base.extend(extra.clone());
        }
        base
    };
    let uid = &incident.uid;
    let agent_id = format!("{}@{agency}", incident.created_by);
    let location_id = format!("urn:emergency:uid:locationid:{uid}:{agency}");
    let location_ref = location_id.clone();
    let notes: Vec<Value> = timeline
        .iter()
        .map(|(seq, entry)| {
            let mut text = entry.kind.as_str().to_string();
            if let Some(unit) = &entry.unit {
                text.push_str(&format!(" {unit}"));
            }
            if !entry.detail.is_empty() {
                text.push_str(&format!(": {}", entry.detail));
            }
            with(
                prologue(format!("urn:emergency:uid:noteid:{uid}-{seq}:{agency}"), &rfc3339(entry.at)),
                json!({"updatedByAgentReference": {"$ref": format!("{}@{agency}", entry.actor)}, "notesActionComments": text}),
            )
        })
        .collect();
    let note_refs: Vec<Value> = notes.iter().map(|n| json!({"$ref": n["$id"]})).collect();
    let status_text = match incident.status {
        IncidentStatus::Closed | IncidentStatus::Cancelled => "Closed",
        _ => "Open",
    };
    let mut incident_component = with(
        prologue(incident_urn(uid, agency), &updated),
        json!({
            "incidentTypeCommonRegistryText": common_incident_type(incident.category()),
            "incidentTypeInternalCode": incident.type_code,
            "incidentTypeInternalText": type_name,
            "incidentStatusCommonRegistryText": [status_text],
            "incidentStatusInternalText": [incident.status.as_str()],
            "internalIncidentId": incident.id.to_string(),
            "incidentPriorityInternalText": format!("P{}", incident.priority),
            "incidentCommonPriorityNumber": incident.priority,
            "agentReference": [{"$ref": agent_id}],
            "locationReference": [{"$ref": location_id}],
            "notesReference": note_refs,
        }),
    );
    if let Some(station) = incident.chain.get(fangkong_core::jurisdiction::JurisdictionKind::PoliceStation) {
        incident_component["beatOrDispatchGroupText"] = json!(station);
    }
    if let Some(disposition) = &incident.disposition {
        incident_component["dispositionComponent"] = json!([with(
            prologue(format!("urn:emergency:uid:dispositionid:{uid}:{agency}"), &updated),
            json!({"dispositionCommonRegistryCode": disposition, "dispositionPrimaryIndicator": true}),
        )]);
    }
    let point = format!(
        "<gml:Point xmlns:gml=\"http://www.opengis.net/gml\" srsName=\"urn:ogc:def:crs:EPSG::4326\"><gml:pos>{} {}</gml:pos></gml:Point>",
        incident.point.lat(),
        incident.point.lon()
    );
    let mut location = with(
        prologue(location_id, &rfc3339(incident.created_at)),
        json!({"locationTypeDescriptionRegistryText": "incident", "locationByValue": point}),
    );
    if !incident.address.is_empty() {
        location["locationDescriptionText"] = json!(incident.address);
    }
    let priority = match incident.priority {
        1 => "highest",
        2 => "high",
        3 => "normal",
        _ => "low",
    };
    let call = with(
        prologue(format!("urn:emergency:uid:callid:{uid}:{agency}"), &rfc3339(incident.created_at)),
        json!({
            "standardPrimaryCallType": "emergency",
            "localCallType": incident.source,
            "direction": "incoming",
            "priorityIdentifier": priority,
            "callStartTimestamp": rfc3339(incident.created_at),
            "callStateRegistryText": "callEnd",
            "agentReference": [{"$ref": agent_id}],
            "locationReference": [{"$ref": location_ref}],
        }),
    );
    let resources: Vec<Value> = incident
        .assignments
        .iter()
        .enumerate()
        .map(|(n, a)| {
            let (call_sign, mode) = units
                .iter()
                .find(|(code, _, _)| code == &a.unit)
                .map(|(_, call_sign, mode)| (call_sign.clone(), mode.clone()))
                .unwrap_or_else(|| (a.unit.clone(), String::new()));
            let at = a.cleared_at.or(a.on_scene_at).or(a.en_route_at).unwrap_or(a.dispatched_at);
            let mut resource = with(
                prologue(format!("urn:emergency:uid:resourceid:{uid}-{n}-{}:{agency}", a.unit), &rfc3339(at)),
                json!({
                    "emergencyResourceTypeCommonRegistryText": "Law Enforcement",
                    "emergencyResourceTypeInternalText": mode,
                    "emergencyResourceName": call_sign,
                    "resourceAttributeRegistryText": [],
                    "primaryUnitStatusRegistryText": common_unit_status(a.status),
                    "secondaryUnitStatusRegistryText": [],
                    "unitStatusInternal": [a.status.as_str()],
                    "agentReference": [{"$ref": agent_id}],
                }),
            );
            if a.is_active() {
                resource["activeOnIncidentId"] = json!(incident_urn(uid, agency));
            }
            resource
        })
        .collect();
    let resource_refs: Vec<Value> = resources.iter().map(|r| json!({"$ref": r["$id"]})).collect();
    let mut document = with(
        prologue(incident_urn(uid, agency), &updated),
        json!({
            "eidoVersion": "1.0",
            "issuingElementIdentification": format!("fangkong.{agency}"),
            "updatedByAgentReference": {"$ref": agent_id},
            "incidentComponent": incident_component,
            "callComponent": [call],
            "locationComponent": [location],
            "notesComponent": notes,
            "agencyComponent": [with(prologue(agency.to_string(), &updated), json!({
                "agencyRoleDescriptionRegistryText": ["CallReceiving", "Dispatch"],
                "agencyType": ["psap"],
                "incidentOwningAgencyIndicator": true,
            }))],
            "agentComponent": [with(prologue(agent_id.clone(), &rfc3339(incident.created_at)), json!({
                "agentRoleRegistryText": ["Call Taking", "Dispatch"],
                "agencyReference": agency_ref,
            }))],
        }),
    );
    if !resources.is_empty() {
        document["emergencyResourceComponent"] = json!(resources);
        document["dispatchComponent"] = json!([with(
            prologue(format!("urn:emergency:uid:dispatchid:{uid}:{agency}"), &updated),
            json!({"agencyReference": agency_ref, "agentReference": {"$ref": agent_id}, "emergencyResourceReference": resource_refs}),
        )]);
    }
    if let Some(into) = merged_into_uid {
        document["mergeComponent"] = json!([with(
            prologue(format!("urn:emergency:uid:mergeid:{uid}:{agency}"), &updated),
            json!({"incidentTrackingIdentifier": incident_urn(into, agency), "incidentMergeDirectionCode": "REPLACED"}),
        )]);
    }
    document
}

/// The incident as an EIDO JSON document (NENA-STA-021), for exchange with other dispatch
/// centres. Carries no caller details.
#[utoipa::path(get, path = "/incidents/{id}/eido", tag = "dispatch", security(("bearer" = [])), params(IncidentPath),
    responses((status = 200, description = "the EIDO document", body = Object), (status = 403, description = "forbidden", body = ErrorBody),
              (status = 404, description = "no such incident", body = ErrorBody)))]
pub async fn export_eido(
    State(state): State<AppState>,
    session: UserSession,
    Path(path): Path<IncidentPath>,
) -> Result<Json<Value>, ApiError> {
    let engine = &state.engine;
    let incident = engine.incident(&session.caller, path.id).await?;
    let timeline = engine.incident_timeline(&session.caller, path.id).await?;
    let type_name =
        engine.code_entry(CodeKind::IncidentType, &incident.type_code).map(|c| c.name_en).unwrap_or_default();
    let board = engine.unit_board(&session.caller).await?;
    let units: Vec<(String, String, String)> = board
        .iter()
        .filter(|u| incident.assignments.iter().any(|a| a.unit == u.unit.code))
        .map(|u| (u.unit.code.clone(), u.unit.call_sign.clone(), u.unit.mode.as_str().to_string()))
        .collect();
    let merged_into_uid = match incident.merged_into {
        Some(into) => Some(engine.incident(&session.caller, into).await?.uid),
        None => None,
    };
    let agency = &engine.config().dispatch.agency_id;
    Ok(Json(eido_document(&incident, &timeline, &type_name, &units, merged_into_uid.as_deref(), agency)))
}
