// The API's wire types the console uses: names for the schemas of the server's OpenAPI
// document. `api.gen.ts` is generated from `openapi.json` (`npm run types`); CI fails when
// either is stale, so a change to the server's types shows here as a type error.

import type { components } from "./api.gen";

type Schemas = components["schemas"];

export type Chain = Schemas["ChainCodesBody"];
export type Assignment = Schemas["AssignmentBody"];
export type Incident = Schemas["IncidentBody"];
export type UnitState = Schemas["UnitStateBody"];
/** An alarm point (报警点) or checkpoint (卡口) terminal and whether it reports. */
export type Site = Schemas["SiteBody"];
export type UnitOnBoard = Schemas["UnitOnBoardBody"];
export type LivePosition = Schemas["LivePositionBody"];
export type Recommendation = Schemas["RecommendationBody"];
export type TimelineEntry = Schemas["TimelineEntryBody"];
export type Code = Schemas["CodeBody"];
export type Resident = Schemas["ResidentBody"];
export type Tenancy = Schemas["TenancyBody"];
export type Permit = Schemas["PermitBody"];
export type Visit = Schemas["VisitBody"];
export type Property = Schemas["PropertyBody"];
export type Landlord = Schemas["LandlordView"];
export type PropertyCard = Schemas["CardBody"];
export type ResidentCard = Schemas["ResidentCardBody"];
export type Alert = Schemas["AlertBody"];
export type JurisdictionNode = Schemas["JurisdictionBody"];
/** A message on the live stream (`/api/v1/stream`). */
export type StreamMessage = Schemas["StreamMessage"];
