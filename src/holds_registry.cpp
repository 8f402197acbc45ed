// Pure C++ holds registry; see holds_registry.hpp for the model.
#include "holds_registry.hpp"

#include <algorithm>

namespace pglocks {

namespace {
bool transaction_bound(Scope s) { return s != Scope::Session; }
}  // namespace

Entry* HoldsRegistry::find_held(const LockId& id) noexcept {
    auto it = entries_.find(id);
    if (it == entries_.end() || it->second.holds.empty()) return nullptr;
    return &it->second;
}

Entry* HoldsRegistry::reserve(const LockId& id, std::string_view name, bool has_name) {
    if (spare_.capacity() == 0) spare_.reserve(kSpareNodes);
    auto it = entries_.find(id);
    if (it != entries_.end()) {
        if (has_parked_ && id == parked_id_) has_parked_ = false;  // in use again
    } else {
        // A node for the new entry: the entry kept by the last release (so that a release
        // of one key after another costs no more than with no entry kept), else a spare.
        Map::node_type node;
        if (has_parked_) {
            node = entries_.extract(parked());
            has_parked_ = false;
        } else if (!spare_.empty()) {
            node = std::move(spare_.back());
            spare_.pop_back();
        }
        if (node.empty()) {
            it = entries_.emplace(id, Entry{}).first;
        } else {
            node.key() = id;
            Entry& reused = node.mapped();
            reused.name.clear();
            reused.has_name = false;
            reused.published = false;
            reused.holds.clear();
            it = entries_.insert(std::move(node)).position;
        }
    }
    Entry& e = it->second;
    if (has_name && !e.has_name) {
        e.name.assign(name.data(), name.size());
        e.has_name = true;
    }
    // Geometric growth: a session may take one lock thousands of times.
    if (e.holds.size() == e.holds.capacity())
        e.holds.reserve(std::max<size_t>(4, 2 * e.holds.size()));
    return &e;
}

uint64_t HoldsRegistry::add(const LockId& id, Scope scope, uint32_t subxact, int64_t now,
                            int64_t token, uint32_t owner, uint32_t stats_row) noexcept {
    auto it = entries_.find(id);
    if (it == entries_.end()) return 0;
    return add(&it->second, scope, subxact, now, token, owner, stats_row);
}

uint64_t HoldsRegistry::add(Entry* entry, Scope scope, uint32_t subxact, int64_t now, int64_t token,
                            uint32_t owner, uint32_t stats_row) noexcept {
    auto& holds = entry->holds;
    if (holds.size() == holds.capacity()) return 0;
    const uint64_t hold_id = next_hold_id_++;
    holds.push_back(Hold{hold_id, scope, subxact, now, token, owner, stats_row});
    hold_count_++;
    if (transaction_bound(scope)) transaction_holds_++;
    return hold_id;
}

HoldsRegistry::Map::iterator HoldsRegistry::erase(Map::iterator it) noexcept {
    if (it->second.published && unpublish_ != nullptr) unpublish_(it->first);
    if (has_parked_ && it->first == parked_id_) has_parked_ = false;
    if (spare_.size() == spare_.capacity()) return entries_.erase(it);
    auto next = std::next(it);
    spare_.push_back(entries_.extract(it));  // within capacity: cannot throw
    return next;
}

HoldsRegistry::Map::iterator HoldsRegistry::parked() noexcept {
    return parked_buckets_ == entries_.bucket_count() ? parked_it_ : entries_.find(parked_id_);
}

void HoldsRegistry::park(Map::iterator it) noexcept {
    Entry& e = it->second;
    if (e.published && unpublish_ != nullptr) unpublish_(it->first);
    // As a recycled node starts (reserve()): the next acquire may come by another key form.
    e.published = false;
    e.has_name = false;
    e.name.clear();
    if (has_parked_ && !(parked_id_ == it->first)) erase(parked());  // keeps `it` valid
    parked_id_ = it->first;
    parked_it_ = it;
    parked_buckets_ = entries_.bucket_count();
    has_parked_ = true;
}

bool HoldsRegistry::mark_published(const LockId& id) noexcept {
    auto it = entries_.find(id);
    if (it == entries_.end() || it->second.holds.empty()) return false;
    it->second.published = true;
    return true;
}

void HoldsRegistry::unpublish_all() noexcept {
    for (auto& [id, entry] : entries_) {
        if (entry.published && unpublish_ != nullptr) unpublish_(id);
        entry.published = false;
    }
}

const Entry* HoldsRegistry::find(const LockId& id) const noexcept {
    auto it = entries_.find(id);
    return it == entries_.end() ? nullptr : &it->second;
}

bool HoldsRegistry::set_token(const LockId& id, uint64_t hold_id, int64_t token) noexcept {
    auto it = entries_.find(id);
    if (it == entries_.end()) return false;
    for (Hold& h : it->second.holds) {
        if (h.id == hold_id) {
            h.token = token;
            return true;
        }
    }
    return false;
}

bool HoldsRegistry::set_scope(const LockId& id, uint64_t hold_id, Scope scope) noexcept {
    auto it = entries_.find(id);
    if (it == entries_.end()) return false;
    for (Hold& h : it->second.holds) {
        if (h.id != hold_id) continue;
        if (transaction_bound(h.scope)) transaction_holds_--;
        if (transaction_bound(scope)) transaction_holds_++;
        h.scope = scope;
        return true;
    }
    return false;
}

int64_t HoldsRegistry::newest_token(const LockId& id) const noexcept {
    auto it = entries_.find(id);
    if (it == entries_.end()) return 0;
    for (auto h = it->second.holds.rbegin(); h != it->second.holds.rend(); ++h)
        if (h->token != 0) return h->token;
    return 0;
}

void HoldsRegistry::drop_if_empty(const LockId& id) noexcept {
    auto it = entries_.find(id);
    if (it != entries_.end() && it->second.holds.empty()) erase(it);
}

void HoldsRegistry::note_removed(const LockId& id, const Hold& h) noexcept {
    if (removed_ != nullptr) removed_(id, h);
    hold_count_--;
    if (transaction_bound(h.scope)) transaction_holds_--;
}

int HoldsRegistry::release_newest_checked(const LockId& id, LockPredicate still_held,
                                          bool* now_empty) noexcept {
    auto it = entries_.find(id);
    if (it == entries_.end() || it->second.holds.empty()) return 0;
    if (!still_held(id)) return -1;
    auto& holds = it->second.holds;
    auto h = std::find_if(holds.rbegin(), holds.rend(),
                          [](const Hold& x) { return x.scope != Scope::Call; });
    if (h == holds.rend()) return 0;
    note_removed(id, *h);
    holds.erase(std::next(h).base());
    *now_empty = holds.empty();
    if (*now_empty) park(it);
    return 1;
}

bool HoldsRegistry::release_newest(const LockId& id, bool* now_empty) noexcept {
    auto it = entries_.find(id);
    if (it == entries_.end()) return false;
    auto& holds = it->second.holds;
    // Holds of pglocks_with_lock belong to their call, which releases them.
    auto h = std::find_if(holds.rbegin(), holds.rend(),
                          [](const Hold& x) { return x.scope != Scope::Call; });
    if (h == holds.rend()) return false;
    note_removed(id, *h);
    holds.erase(std::next(h).base());
    *now_empty = holds.empty();
    if (*now_empty) park(it);
    return true;
}

bool HoldsRegistry::release_hold(const LockId& id, uint64_t hold_id, bool* now_empty) noexcept {
    auto it = entries_.find(id);
    if (it == entries_.end()) return false;
    auto& holds = it->second.holds;
    auto h = std::find_if(holds.rbegin(), holds.rend(),
                          [hold_id](const Hold& x) { return x.id == hold_id; });
    if (h == holds.rend()) return false;
    note_removed(id, *h);
    holds.erase(std::next(h).base());
    *now_empty = holds.empty();
    if (*now_empty) park(it);
    return true;
}

uint64_t HoldsRegistry::reconcile(LockPredicate still_held) noexcept {
    uint64_t forgotten = 0;
    for (auto it = entries_.begin(); it != entries_.end();) {
        // An entry without holds is room reserved by an acquire in progress: keep it.
        if (!it->second.holds.empty() && !still_held(it->first)) {
            for (const Hold& h : it->second.holds) note_removed(it->first, h);
            forgotten += it->second.holds.size();
            it = erase(it);
        } else {
            ++it;
        }
    }
    return forgotten;
}

uint64_t HoldsRegistry::release_all(LockPredicate still_held, LockAction release_lock) noexcept {
    uint64_t released = 0;
    for (auto it = entries_.begin(); it != entries_.end();) {
        if (!it->second.holds.empty() && still_held(it->first)) {
            released += it->second.holds.size();
            release_lock(it->first);
        }
        if (removed_ != nullptr)
            for (const Hold& h : it->second.holds) removed_(it->first, h);
        it = erase(it);
    }
    hold_count_ = 0;
    transaction_holds_ = 0;
    return released;
}

void HoldsRegistry::end_transaction_holds(uint32_t from_subxact, LockPredicate still_held,
                                          LockAction release_lock) noexcept {
    if (transaction_holds_ == 0) return;
    for (auto it = entries_.begin(); it != entries_.end();) {
        auto& holds = it->second.holds;
        const bool had_holds = !holds.empty();
        auto keep = std::remove_if(holds.begin(), holds.end(), [&](const Hold& h) {
            const bool ends = transaction_bound(h.scope) && h.subxact >= from_subxact;
            if (ends) note_removed(it->first, h);
            return ends;
        });
        holds.erase(keep, holds.end());
        if (had_holds && holds.empty()) {
            if (still_held(it->first)) release_lock(it->first);
            it = erase(it);
        } else {
            ++it;
        }
    }
}

void HoldsRegistry::visit_holds(HoldVisitor visit) const noexcept {
    for (const auto& [id, entry] : entries_)
        for (const Hold& h : entry.holds) visit(id, h);
}

bool HoldsRegistry::has_scope(Scope scope) const noexcept {
    for (const auto& [id, entry] : entries_)
        for (const Hold& h : entry.holds)
            if (h.scope == scope) return true;
    return false;
}

size_t HoldsRegistry::held_row_count() const noexcept {
    size_t n = 0;
    for (const auto& [id, entry] : entries_) {
        bool seen[kScopeCount] = {false, false, false};
        for (const Hold& h : entry.holds) seen[static_cast<int>(h.scope)] = true;
        for (bool s : seen) n += s ? 1 : 0;
    }
    return n;
}

size_t HoldsRegistry::held_rows(HeldRow* rows, size_t capacity) const noexcept {
    size_t n = 0;
    for (const auto& [id, entry] : entries_) {
        HeldRow* group[kScopeCount] = {nullptr, nullptr, nullptr};
        for (const Hold& h : entry.holds) {
            HeldRow*& row = group[static_cast<int>(h.scope)];
            if (row == nullptr) {
                if (n == capacity) return n;
                row = &rows[n++];
                *row = HeldRow{id,
                               entry.name.data(),
                               entry.name.size(),
                               entry.has_name,
                               h.scope,
                               0,
                               h.acquired_at,
                               h.id};
            }
            row->holds++;
            if (h.id < row->first_id) {
                row->first_id = h.id;
                row->acquired_at = h.acquired_at;
            }
        }
    }
    std::sort(rows, rows + n,
              [](const HeldRow& a, const HeldRow& b) { return a.first_id < b.first_id; });
    return n;
}

}  // namespace pglocks
