// Internal to nvbox_images: RAII owners of libarchive handles, shared by the
// bundle code and the initramfs writer.
#pragma once

#include <archive.h>
#include <archive_entry.h>
#include <memory>

namespace nvbox::images::detail {

struct ReadFree {
  void operator()(archive *a) const noexcept { archive_read_free(a); }
};
struct WriteFree {
  void operator()(archive *a) const noexcept { archive_write_free(a); }
};
struct EntryFree {
  void operator()(archive_entry *e) const noexcept { archive_entry_free(e); }
};
using ReadArchive = std::unique_ptr<archive, ReadFree>;
using WriteArchive = std::unique_ptr<archive, WriteFree>;
using Entry = std::unique_ptr<archive_entry, EntryFree>;

} // namespace nvbox::images::detail
