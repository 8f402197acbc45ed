// Fencing tokens: pglocks_acquire_token() and pglocks_token(). A token is the value
// nextval(pglocks_token_seq) returns, and its top bits (from bit 48 up, its part) are never
// below the timeline the server issues it on: a draw that finds the sequence below
// (timeline << 48) moves it there first, keeping the 48 low bits, and the first draw on a new
// timeline moves the part one above what it was (draw_token). So tokens issued after a
// failover to a physical standby exceed every token of the old primary even when the standby
// had not replayed its last sequence records; and since the sequence carries the whole
// token, a cluster whose timeline starts at 1 again (pg_upgrade, a restore into a new
// cluster) goes on from the tokens issued before instead of going back.
// (1.1 libraries issued (timeline << 40) + the sequence's value, below 2^40.)
// The sequence is the extension's own. A fresh one (CREATE EXTENSION, also after DROP
// EXTENSION) starts at half the WAL insert position (pglocks_token_floor(), called by the
// 1.1--1.2 script): every nextval that logs writes a sequence record of about 100 bytes for
// 33 values (more than 2 bytes a value), so the tokens of an earlier incarnation of the
// extension stay below half the WAL position reached since, and DROP EXTENSION cannot move
// the WAL position back. Its WAL record is flushed before a token is handed out, so a crash
// restart never issues a token again.
#include "pg_guards.hpp"
#include "pg_holds.hpp"

extern "C" {
#include "access/htup_details.h"
#include "access/relation.h"
#include "access/timeline.h"
#include "access/xact.h"
#include "access/xlog.h"
#include "catalog/namespace.h"
#include "catalog/pg_class.h"
#include "catalog/pg_sequence.h"
#include "commands/sequence.h"
#include "storage/bufmgr.h"
#include "miscadmin.h"
#include "storage/lmgr.h"
#include "utils/builtins.h"
#include "utils/fmgrprotos.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"
#include "utils/syscache.h"
}

namespace pglocks {
namespace {

// The layout follows the installed SQL, not the library: while an installation still has
// the 1.1 objects, backends that loaded a 1.1 library may be issuing tokens too, so this one
// issues 1.1's layout; the 1.1--1.2 script moves the sequence to 2^40 or beyond, where a
// 1.1 library refuses to issue any (its values must stay below 2^40), before 1.2's layout
// is used. So tokens never go back while old and new libraries run side by side.
constexpr int kSequenceBits = 48;
constexpr int kSequenceBits_1_1 = 40;
constexpr const char* kSequenceName = "pglocks_token_seq";
constexpr int64 kLayoutMargin = INT64CONST(1) << 20;

// The sequence sits in the extension's schema, which is the calling function's schema.
Oid token_sequence(FunctionCallInfo fcinfo) {
    static Oid cached = InvalidOid;
    const Oid nsp = get_func_namespace(fcinfo->flinfo->fn_oid);
    if (OidIsValid(cached)) {
        // The extension may have been dropped and created again in this session.
        const char* name = get_rel_name(cached);
        if (name != nullptr && strcmp(name, kSequenceName) == 0 && get_rel_namespace(cached) == nsp)
            return cached;
    }
    const Oid seq = OidIsValid(nsp) ? get_relname_relid(kSequenceName, nsp) : InvalidOid;
    if (!OidIsValid(seq))
        ereport(ERROR, (errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
                        errmsg("fencing tokens need pglocks 1.1 or later"),
                        errhint("Run ALTER EXTENSION pglocks UPDATE.")));
    cached = seq;
    return seq;
}

// The order of tokens holds only for the sequence as the extension made it: logged (an
// unlogged sequence starts again after a crash and is not replicated), one value at a time
// (a cache hands a backend's unused values to nobody and lets sessions draw out of order),
// counting up and never cycling. A superuser can ALTER it; then no token is issued.
void check_token_sequence(Oid seq) {
    HeapTuple tuple = SearchSysCache1(SEQRELID, ObjectIdGetDatum(seq));
    if (!HeapTupleIsValid(tuple)) elog(ERROR, "cache lookup failed for sequence %u", seq);
    const Form_pg_sequence form = reinterpret_cast<Form_pg_sequence>(GETSTRUCT(tuple));
    // An increment of one: the start of a fresh sequence relies on every value costing
    // more than two bytes of WAL (see the top).
    const bool as_made = form->seqincrement == 1 && form->seqcache == 1 && !form->seqcycle;
    ReleaseSysCache(tuple);
    // A file this transaction gave the sequence (CREATE EXTENSION or ALTER EXTENSION UPDATE
    // from 1.0, which create it; ALTER SEQUENCE with any option but OWNED BY, which rewrites
    // it; SET LOGGED or UNLOGGED) goes if the transaction, or the subtransaction that gave it,
    // rolls back, with the values drawn from it: the sequence then has none (dropped) or an
    // older file back, and tokens drawn from the new one would be issued again, or exceeded
    // by later ones no more. (Under wal_level = minimal, such a file's changes write no WAL
    // before the commit either.)
    Relation rel = RelationIdGetRelation(seq);
    if (!RelationIsValid(rel)) elog(ERROR, "could not open relation with OID %u", seq);
    const bool new_file = rel->rd_createSubid != InvalidSubTransactionId ||
                          PGLOCKS_REL_FIRST_NEW_FILE_SUBID(rel) != InvalidSubTransactionId;
    RelationClose(rel);
    if (new_file)
        ereport(ERROR,
                (errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
                 errmsg("cannot issue pglocks fencing tokens in the transaction that created or "
                        "rewrote %s",
                        kSequenceName),
                 errdetail("A rollback would undo the change, and the tokens drawn since would "
                           "be issued again."),
                 errhint("Draw tokens in a later transaction.")));
    if (!as_made || get_rel_persistence(seq) != RELPERSISTENCE_PERMANENT)
        ereport(ERROR,
                (errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
                 errmsg("pglocks fencing tokens need %s as the extension made it", kSequenceName),
                 errdetail("It must be logged, count up by one with CACHE 1, and not cycle."),
                 errhint("Run ALTER SEQUENCE %s CACHE 1 NO CYCLE INCREMENT BY 1, and ALTER "
                         "SEQUENCE %s SET LOGGED if it is unlogged.",
                         kSequenceName, kSequenceName)));
}

// Where a token cannot be drawn, so that the call fails before it waits for the lock.
void check_can_issue() {
    if (RecoveryInProgress())
        ereport(ERROR, (errcode(ERRCODE_READ_ONLY_SQL_TRANSACTION),
                        errmsg("cannot issue pglocks fencing tokens during recovery"),
                        errhint("Fencing tokens are issued by the primary.")));
    if (XactReadOnly)
        ereport(ERROR, (errcode(ERRCODE_READ_ONLY_SQL_TRANSACTION),
                        errmsg("cannot issue pglocks fencing tokens in a read-only transaction")));
}

// setval and pg_sequence_last_value check the caller's privileges on the sequence, which
// nobody is granted: they run as the sequence's owner, who has them, for that call only (an
// error in it ends with the (sub)transaction's abort, which restores the user).
struct AsOwner {
    Oid user = InvalidOid;
    int sec_context = 0;
};

AsOwner become_owner(Oid seq) {
    HeapTuple tuple = SearchSysCache1(RELOID, ObjectIdGetDatum(seq));
    if (!HeapTupleIsValid(tuple)) elog(ERROR, "cache lookup failed for relation %u", seq);
    const Oid owner = reinterpret_cast<Form_pg_class>(GETSTRUCT(tuple))->relowner;
    ReleaseSysCache(tuple);
    AsOwner saved;
    GetUserIdAndSecContext(&saved.user, &saved.sec_context);
    SetUserIdAndSecContext(
        owner, saved.sec_context | SECURITY_LOCAL_USERID_CHANGE | SECURITY_RESTRICTED_OPERATION);
    return saved;
}

void move_sequence(Oid seq, int64 value) {
    const AsOwner saved = become_owner(seq);
    (void)DirectFunctionCall3(setval3_oid, ObjectIdGetDatum(seq), Int64GetDatum(value),
                              BoolGetDatum(true));
    SetUserIdAndSecContext(saved.user, saved.sec_context);
}

// The value the sequence gave last; 0 when it has given none.
int64 sequence_last_value(Oid seq) {
    const AsOwner saved = become_owner(seq);
    LOCAL_FCINFO(fcinfo, 1);
    InitFunctionCallInfoData(*fcinfo, nullptr, 1, InvalidOid, nullptr, nullptr);
    fcinfo->args[0].value = ObjectIdGetDatum(seq);
    fcinfo->args[0].isnull = false;
    const Datum last = pg_sequence_last_value(fcinfo);
    SetUserIdAndSecContext(saved.user, saved.sec_context);
    return fcinfo->isnull ? 0 : DatumGetInt64(last);
}

// The LSN of the sequence's page: of the last WAL record that changed it.
XLogRecPtr sequence_lsn(Oid seq) {
    Relation rel = relation_open(seq, AccessShareLock);
    Buffer buf = ReadBuffer(rel, 0);
    LockBuffer(buf, BUFFER_LOCK_SHARE);
    const XLogRecPtr lsn = PageGetLSN(BufferGetPage(buf));
    UnlockReleaseBuffer(buf);
    relation_close(rel, AccessShareLock);
    return lsn;
}

// The sequence this backend has seen changed on its timeline (its page's LSN past the
// timeline's start), so that later draws skip reading the page before they draw. A draw
// reads only a file no rollback of its transaction can take away (check_token_sequence
// refuses one the transaction gave the sequence), so no rollback brings back an older file
// whose page may be from before the promotion. A file committed after the remembered one was
// written on this timeline and, but for a RESTART, carries the remembered one's last value on.
// Another backend's file that is not committed is never read: the RowExclusiveLock
// next_token takes before it reads the page waits for the rewrite's lock.
Oid g_past_seq = InvalidOid;
TimeLineID g_past_tli = 0;

// Where the timeline began (its switch point in the history; 0 for timeline 1, or when the
// history file is gone), read once per backend and timeline.
XLogRecPtr timeline_begin(TimeLineID tli) {
    static TimeLineID cached_tli = 0;
    static XLogRecPtr cached_begin = InvalidXLogRecPtr;
    if (tli == cached_tli) return cached_begin;
    XLogRecPtr begin = InvalidXLogRecPtr;
    List* history = readTimeLineHistory(tli);
    ListCell* lc;
    foreach (lc, history) {
        const auto* entry = static_cast<const TimeLineHistoryEntry*>(lfirst(lc));
        if (entry->tli == tli) begin = entry->begin;
    }
    list_free_deep(history);
    cached_tli = tli;
    cached_begin = begin;
    return begin;
}

// The next token, of 1.2's layout. Two moves of the sequence keep it above every token
// issued before, each made by one backend at a time under an object lock on the sequence:
//  - the first draw on a timeline (the sequence's page last changed before the timeline
//    began: a promotion) moves the sequence's bits from 48 up one above what they were,
//    and at least to the timeline; a server promoted after pg_upgrade or a restore, whose
//    timeline restarted at 1 while the sequence kept its part, moves past it too. It moves
//    before it draws: a backend that reads the page's LSN as of this timeline draws after
//    the move.
//  - a value below (timeline << 48) (a fresh sequence, or one of a layout that kept the
//    timeline out of it) moves up to it, keeping its 48 low bits; every backend that drew
//    such a value meanwhile waits for the move and draws again, so none is handed out once
//    one at or above it was, and the move never takes the sequence back past a value another
//    backend drew.
int64 draw_token(Oid seq, TimeLineID tli) {
    const int64 floor = static_cast<int64>(static_cast<uint64>(tli) << kSequenceBits);
    const int64 low_mask = (INT64CONST(1) << kSequenceBits) - 1;
    // A record replayed last before the promotion ends exactly where the timeline begins;
    // any record written on the timeline ends after it.
    const XLogRecPtr begin = timeline_begin(tli);
    if (begin == InvalidXLogRecPtr || (seq == g_past_seq && tli == g_past_tli) ||
        sequence_lsn(seq) > begin) {
        const int64 value = nextval_internal(seq, false);
        g_past_seq = seq;
        g_past_tli = tli;
        if (value >= floor) return value;
    }
    LockDatabaseObject(RelationRelationId, seq, 1, ExclusiveLock);
    const XLogRecPtr lsn = sequence_lsn(seq);
    if (begin != InvalidXLogRecPtr && lsn <= begin) {
        const int64 last = sequence_last_value(seq);
        if (last <= 0)
            ereport(ERROR, (errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
                            errmsg("pglocks cannot issue fencing tokens on this timeline"),
                            errdetail("%s has no last value to move past (it was restarted).",
                                      kSequenceName)));
        // The part grows by as many timelines as the server went through since the page
        // last changed, so that it stays ahead of the timeline by what it was: a server
        // promoted after another promotion it missed the move of gets a part above that
        // one's too (after pg_upgrade the part may be above the timeline).
        TimeLineID page_tli = tli - 1;
        if (lsn > 0) {
            List* history = readTimeLineHistory(tli);
            page_tli = tliOfPointInHistory(lsn - 1, history);
            list_free_deep(history);
        }
        const int64 steps = tli > page_tli ? static_cast<int64>(tli - page_tli) : 1;
        const int64 part =
            std::max<int64>((last >> kSequenceBits) + steps, static_cast<int64>(tli));
        move_sequence(seq, (part << kSequenceBits) + (last & low_mask) +
                               (last >> kSequenceBits == 0 ? kLayoutMargin : 0));
    }
    int64 value = nextval_internal(seq, false);
    if (value < floor) {
        // A value without any timeline part is of the layout of 1.2 builds before this one,
        // whose backends may still be drawing (their tokens: (timeline << 48) + value) until
        // the move, after which they refuse to: a margin above the value puts this token
        // above theirs drawn in the instant before the move.
        value = floor + (value & low_mask) + (value >> kSequenceBits == 0 ? kLayoutMargin : 0);
        move_sequence(seq, value);
    }
    UnlockDatabaseObject(RelationRelationId, seq, 1, ExclusiveLock);
    return value;
}

int64_t next_token(FunctionCallInfo fcinfo, int sequence_bits) {
    check_can_issue();
    const Oid seq = token_sequence(fcinfo);
    // The lock nextval takes, taken first: it reads the catalog changes committed since
    // (AcceptInvalidationMessages), and an ALTER SEQUENCE waits for it, so the check sees
    // the settings the draw uses. It lasts to the end of the transaction.
    LockRelationOid(seq, RowExclusiveLock);
    check_token_sequence(seq);
    const uint64 tli = compat::wal_insert_timeline();
    if (tli >= (UINT64CONST(1) << (63 - sequence_bits)))
        ereport(ERROR, (errcode(ERRCODE_SEQUENCE_GENERATOR_LIMIT_EXCEEDED),
                        errmsg("pglocks fencing tokens are exhausted on this timeline")));
    // No privilege on the sequence is needed or granted: tokens come only from here, and
    // nobody can move the sequence back.
    int64 value = 0;
    if (sequence_bits == kSequenceBits) {
        value = draw_token(seq, static_cast<TimeLineID>(tli));
    } else {
        // 1.1's layout: the value below 2^40, the timeline above.
        value = nextval_internal(seq, false);
        if (value <= 0 || value >= (INT64CONST(1) << sequence_bits))
            ereport(ERROR, (errcode(ERRCODE_SEQUENCE_GENERATOR_LIMIT_EXCEEDED),
                            errmsg("pglocks fencing tokens are exhausted on this timeline"),
                            errhint("Run ALTER EXTENSION pglocks UPDATE, and reconnect "
                                    "sessions that loaded an older pglocks library.")));
        value = static_cast<int64>((tli << sequence_bits) | static_cast<uint64>(value));
    }
    // The WAL record covering this value may be another backend's, not yet flushed: flush
    // up to the sequence page's LSN, a no-op when it is already on disk.
    XLogFlush(sequence_lsn(seq));
    return static_cast<int64_t>(value);
}

Datum acquire_token_call(FunctionCallInfo fcinfo, KeyReader read_key) {
    AcquireRequest req;
    const int arg = read_key(fcinfo, &req.key);
    read_acquire_options(fcinfo, arg, &req);
    const Scope scope = req.scope;
    check_acquire_guards(req);  // for the scope the hold ends up with
    // A sequence not as made fails the draw anyway: fail before waiting for the lock. The
    // draw checks again under the sequence's lock (an ALTER may commit while this waits).
    check_standby();  // the acquire's own error first, as for every acquire on a standby
    check_can_issue();
    check_token_sequence(token_sequence(fcinfo));
    // Drawn once the lock is granted, so that successive holders of a lock get increasing
    // tokens whatever order they queued in. Until the token is drawn the hold is a call-scope
    // hold: if drawing fails, the abort of the (sub)transaction ends it (a hold without its
    // token would defeat the fencing), and nothing here touches the lock manager while the
    // error is in flight.
    req.scope = Scope::Call;
    const uint64_t hold = acquire(req);
    if (hold == 0) PG_RETURN_NULL();
    // 1.2's SQL declares reentrant after the acquire options.
    const bool sql_1_2 = PG_NARGS() > arg + 4;
    const int64_t token = next_token(fcinfo, sql_1_2 ? kSequenceBits : kSequenceBits_1_1);
    set_hold_token(req.key.id, hold, token);
    set_hold_scope(req.key.id, hold, scope);
    PG_RETURN_INT64(token);
}

Datum token_call(FunctionCallInfo fcinfo, KeyReader read_key) {
    KeyArg key;
    const int arg = read_key(fcinfo, &key);
    require_not_null(fcinfo, arg, "shared");
    key.id.shared = PG_GETARG_BOOL(arg);
    const int64_t token = newest_token(key.id);
    if (token == 0) PG_RETURN_NULL();
    PG_RETURN_INT64(token);
}

}  // namespace
}  // namespace pglocks

using namespace pglocks;

// Where a fresh token sequence starts: half the WAL insert position (see the top).
PGLOCKS_FUNCTION(pglocks_token_floor) {
    if (RecoveryInProgress())
        ereport(ERROR, (errcode(ERRCODE_READ_ONLY_SQL_TRANSACTION),
                        errmsg("cannot compute the pglocks token floor during recovery")));
    PG_RETURN_INT64(static_cast<int64>(GetXLogInsertRecPtr() / 2));
}

PGLOCKS_FUNCTION(pglocks_acquire_token_text) { return acquire_token_call(fcinfo, read_text_key); }
PGLOCKS_FUNCTION(pglocks_acquire_token_bigint) {
    return acquire_token_call(fcinfo, read_bigint_key);
}
PGLOCKS_FUNCTION(pglocks_acquire_token_pair) { return acquire_token_call(fcinfo, read_pair_key); }
PGLOCKS_FUNCTION(pglocks_token_text) { return token_call(fcinfo, read_text_key); }
PGLOCKS_FUNCTION(pglocks_token_bigint) { return token_call(fcinfo, read_bigint_key); }
PGLOCKS_FUNCTION(pglocks_token_pair) { return token_call(fcinfo, read_pair_key); }
