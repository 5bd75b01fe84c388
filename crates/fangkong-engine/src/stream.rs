//! What a live-board client sees (the console's WebSocket, and any other relay of the live
//! picture): the engine decides which events and positions reach a caller, so every relay
//! filters the same way and only translates.
//!
//! A [`BoardView`] is opened once per connection (the role is checked then) and is the
//! caller's jurisdiction narrowed to an optional node. Events are admitted by where their
//! record is: an incident by its chain, a unit by its station, a panic alarm by where its
//! fix was; positions by their chain. Events that are not part of the live board (codes,
//! accounts, the registry) are never admitted.

use fangkong_core::auth::Action;
use fangkong_core::dispatch::Incident;
use fangkong_core::event::Event;
use fangkong_core::jurisdiction::{Chain, Scope};

use crate::avl::LivePosition;
use crate::bus::Envelope;
use crate::dispatch::UnitOnBoard;
use crate::{Caller, Engine, EngineError};

/// One client's view of the live board.
#[derive(Clone, Debug)]
pub struct BoardView {
    caller: Caller,
    within: Option<Scope>,
}

impl BoardView {
    /// The node the view is narrowed to, if any.
    pub fn within(&self) -> Option<&str> {
        self.within.as_ref().map(|scope| scope.code.as_str())
    }

    fn narrowed(&self, chain: &Chain) -> bool {
        self.within.as_ref().is_none_or(|scope| scope.covers(chain))
    }

    fn sees(&self, action: Action, chain: &Chain) -> bool {
        self.caller.actor.check_in(action, chain).is_ok() && self.narrowed(chain)
    }

    /// Whether a tracker's position reaches this view.
    pub fn admits_position(&self, live: &LivePosition) -> bool {
        self.sees(Action::ReadPositions, &live.chain)
    }
}

/// The whole live board as one client may see it, current to `seq` of the bus `epoch`.
#[derive(Clone, Debug)]
pub struct BoardSnapshot {
    pub epoch: String,
    pub seq: u64,
    pub positions: Vec<LivePosition>,
    pub incidents: Vec<Incident>,
    pub units: Vec<UnitOnBoard>,
}

impl Engine {
    /// Opens a view of the live board: the caller must read positions; `within` must be a
    /// node of the tree. A refusal is audited like any other.
    pub async fn board_view(&self, caller: &Caller, within: Option<&str>) -> Result<BoardView, EngineError> {
        self.authorize(caller, Action::ReadPositions, None, "position.live", None).await?;
        let within = within.map(|code| self.scope(code)).transpose()?;
        Ok(BoardView { caller: caller.clone(), within })
    }

    /// Everything the view shows now, for a client that (re)connects. Take it after
    /// subscribing to the bus, so that nothing published in between is lost (an event may
    /// then repeat what the snapshot shows: its revision tells). Parts the caller's role
    /// does not read are empty.
    pub async fn board_snapshot(&self, view: &BoardView) -> BoardSnapshot {
        let seq = self.bus.last_seq();
        let (caller, within) = (&view.caller, view.within());
        let positions = self.live_positions(caller, within).await.unwrap_or_default();
        let incidents = self.open_incidents(caller, within).await.unwrap_or_default();
        let mut units = self.unit_board(caller).await.unwrap_or_default();
        units.retain(|u| self.chain_of(&u.unit.station).is_some_and(|chain| view.narrowed(&chain)));
        BoardSnapshot { epoch: self.epoch.clone(), seq, positions, incidents, units }
    }

    /// Whether an event reaches the view: dispatch events where the caller reads
    /// incidents, panic alarms where the caller reads positions; nothing else.
    pub fn board_admits(&self, view: &BoardView, envelope: &Envelope) -> bool {
        let station = |code: &str| self.chain_of(code).is_some_and(|chain| view.sees(Action::ReadIncidents, &chain));
        match &envelope.event {
            Event::IncidentChanged(incident) => view.sees(Action::ReadIncidents, &incident.chain),
            Event::UnitStatusChanged { station: code, .. } | Event::UnitOverdue { station: code, .. } => station(code),
            Event::PanicAlarm { chain, .. } => view.sees(Action::ReadPositions, chain),
            _ => false,
        }
    }
}
