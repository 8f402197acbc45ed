// Shared memory of pglocks' partitioned tables (the name table, the statistics): what to
// request so that a table never takes the server's spare shared memory.
#pragma once

#include "pg_boundary.hpp"

extern "C" {
#include "storage/shmem.h"
#include "utils/hsearch.h"
}

namespace pglocks {

// hash_estimate_size counts the entries but not the padding of the blocks they come in: a
// partitioned table allocates its entries in one block per freelist (32), each aligned to a
// cache line, and ShmemInitStruct rounds the header struct up to one too.
inline Size partitioned_table_shmem_size(long entries, Size entry_size, Size header_size) {
    constexpr int kHashFreelists = 32;
    Size size = hash_estimate_size(entries, entry_size);
    size = add_size(size, CACHELINEALIGN(header_size));
    return add_size(size, mul_size(kHashFreelists + 2, PG_CACHE_LINE_SIZE));
}

}  // namespace pglocks
