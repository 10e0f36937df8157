// A reader-writer lock that lets a waiting writer in before readers that come after it.
// std::shared_mutex on glibc prefers readers: under a steady stream of overlapping readers (a
// thousand nodes' heartbeats and session messages reading the store) a writer can wait for
// seconds, and the store's writer is the raft node applying entries, whose ticks and
// heartbeats wait behind it. Not recursive: a thread holding it shared must not take it again.
#pragma once

#include <pthread.h>

#include <system_error>

#include "daemon/common/mutex.h"

namespace skep {

class SKEP_CAPABILITY("mutex") WriterFirstMutex {
 public:
  WriterFirstMutex() {
    pthread_rwlockattr_t attr;
    pthread_rwlockattr_init(&attr);
    pthread_rwlockattr_setkind_np(&attr, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
    const int rc = pthread_rwlock_init(&lock_, &attr);
    pthread_rwlockattr_destroy(&attr);
    if (rc != 0) throw std::system_error(rc, std::generic_category(), "pthread_rwlock_init");
  }
  ~WriterFirstMutex() { pthread_rwlock_destroy(&lock_); }
  WriterFirstMutex(const WriterFirstMutex&) = delete;
  WriterFirstMutex& operator=(const WriterFirstMutex&) = delete;

  void lock() SKEP_ACQUIRE() { Check(pthread_rwlock_wrlock(&lock_)); }
  void unlock() SKEP_RELEASE() { pthread_rwlock_unlock(&lock_); }
  void lock_shared() SKEP_ACQUIRE_SHARED() { Check(pthread_rwlock_rdlock(&lock_)); }
  void unlock_shared() SKEP_RELEASE_SHARED() { pthread_rwlock_unlock(&lock_); }

 private:
  static void Check(int rc) {
    if (rc != 0) throw std::system_error(rc, std::generic_category(), "pthread_rwlock");
  }
  pthread_rwlock_t lock_;
};

// Holds a WriterFirstMutex shared, or exclusively, for a scope.
class SKEP_SCOPED_CAPABILITY ReaderLock {
 public:
  explicit ReaderLock(WriterFirstMutex& mu) SKEP_ACQUIRE_SHARED(mu) : mu_(mu) { mu_.lock_shared(); }
  ~ReaderLock() SKEP_RELEASE() { mu_.unlock_shared(); }
  ReaderLock(const ReaderLock&) = delete;
  ReaderLock& operator=(const ReaderLock&) = delete;

 private:
  WriterFirstMutex& mu_;
};

class SKEP_SCOPED_CAPABILITY WriterLock {
 public:
  explicit WriterLock(WriterFirstMutex& mu) SKEP_ACQUIRE(mu) : mu_(mu) { mu_.lock(); }
  ~WriterLock() SKEP_RELEASE() { mu_.unlock(); }
  WriterLock(const WriterLock&) = delete;
  WriterLock& operator=(const WriterLock&) = delete;

 private:
  WriterFirstMutex& mu_;
};

}  // namespace skep
