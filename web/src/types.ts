// The API's wire types the console uses (see /api/v1/openapi.json).

export interface Chain {
  district: string | null;
  subdistrict: string | null;
  community: string | null;
  grid: string | null;
  police_station: string | null;
  police_district: string | null;
}

export interface Assignment {
  unit: string;
  status: string;
  dispatched_at: string;
  en_route_at: string | null;
  on_scene_at: string | null;
  cleared_at: string | null;
}

export interface Incident {
  id: number;
  uid: string;
  source: string;
  type_code: string;
  priority: number;
  status: string;
  disposition: string | null;
  lat: number;
  lon: number;
  address: string;
  jurisdiction: Chain;
  description: string;
  caller_phone_masked: string | null;
  possible_duplicates: number[];
  merged_into: number | null;
  area_class: string;
  created_by: string;
  created_at: string;
  updated_at: string;
  revision: number;
  dispatched_at: string | null;
  arrived_at: string | null;
  resolved_at: string | null;
  closed_at: string | null;
  units: Assignment[];
  response: { call_to_dispatch_s: number | null; dispatch_to_arrival_s: number | null; call_to_arrival_s: number | null; arrival_target_s: number; within_target: boolean | null };
}

export interface UnitState {
  unit: string;
  status: string;
  since: string;
  incident: number | null;
}

/** An alarm point (报警点) or checkpoint (卡口) terminal and whether it reports. */
export interface Site {
  unique_id: string;
  kind: "alarm_point" | "checkpoint";
  name: string | null;
  lat: number;
  lon: number;
  jurisdiction: string;
  last_seen_at: string | null;
  online: boolean;
}

export interface UnitOnBoard {
  unit: string;
  call_sign: string;
  station: string;
  category: string;
  mode: string;
  capabilities: string[];
  beat: string | null;
  state: UnitState;
  lat: number | null;
  lon: number | null;
  fixed_at: string | null;
  overdue: boolean;
}

export interface LivePosition {
  device: string;
  unit: string | null;
  fix: { lat: number; lon: number; fixed_at: string; speed_kmh?: number | null; course?: number | null };
  received_at: string;
}

export interface Recommendation {
  unit: string;
  call_sign: string | null;
  mode: string | null;
  category: string | null;
  distance_m: number;
  eta_s: number;
  owns_beat: boolean;
  suitable: boolean;
}

export interface TimelineEntry {
  seq: number;
  at: string;
  actor: string;
  kind: string;
  unit: string | null;
  detail: string;
}

export interface Code {
  kind: string;
  code: string;
  parent: string | null;
  name_zh: string;
  name_en: string;
  priority: number | null;
  active: boolean;
}

export interface Resident {
  code: string;
  document: string;
  id_number: string;
  id_number_masked: boolean;
  name: string;
  sex: string;
  birth_date: string;
  phone: string | null;
  phone_masked: boolean;
  origin_province: string | null;
  origin_city: string | null;
  employer: string | null;
  unit: string | null;
  grid: string;
  community: string;
}

export interface Tenancy {
  code: string;
  unit: string;
  landlord: string | null;
  lessee: string;
  members: string[];
  move_in: string;
  move_out: string | null;
  community: string;
}

export interface Permit {
  resident: string;
  kind: string;
  issued: string;
  expires: string;
  endorsed: string | null;
}

export interface Visit {
  id: number;
  unit: string;
  day: string;
  by: string;
  outcome: string;
  occupants: number | null;
  note: string;
}

export interface Property {
  code: string;
  address: string;
  grid: string;
  community: string;
  lat: number;
  lon: number;
  kind: string;
  floors: number;
  units: { code: string; floor: number; area_m2: number; rooms: number; usage: string; rent_yuan: number | null; rental: boolean; landlord: string | null }[];
}

export interface Landlord {
  code: string;
  kind: string;
  name: string;
  phone: string | null;
  safety_person: string;
  safety_phone: string | null;
  pledge_signed: string | null;
  pledge_expires: string | null;
}

export interface PropertyCard {
  building: Property;
  landlords: Landlord[];
  tenancies: Tenancy[];
  residents: Resident[];
  permits: Permit[];
  visits: Visit[];
}

export interface ResidentCard {
  resident: Resident;
  tenancies: Tenancy[];
  permit: Permit | null;
}

export interface Alert {
  kind: string;
  community: string;
  subject: string;
  due: string | null;
  detail: string;
}

export interface JurisdictionNode {
  code: string;
  kind: string;
  parent: string | null;
  name_zh: string;
  name_en: string | null;
}
