// SPDX-License-Identifier: MIT
#include "impl/oracle/model.h"

#include <cerrno>
#include <sstream>

namespace oracle {

std::string config_enomem_culprit(const std::vector<kern::AllocDecision>& log) {
  std::string nonblocking;
  for (const kern::AllocDecision& d : log) {
    if (!d.failed) continue;
    if (kern::gfpflags_allow_blocking(d.gfp)) return "";
    nonblocking = d.site;
  }
  return nonblocking.empty() ? "no allocation failed"
                             : "non-blocking allocation failed at " + nonblocking;
}
namespace {

bool space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\v' || c == '\f' || c == '\r'; }
bool digit(char c) { return c >= '0' && c <= '9'; }

// Leading digits of s from i, wrapping modulo 2^64; false if there is none.
bool digits(const std::string& s, size_t* i, uint64_t* v) {
  if (*i >= s.size() || !digit(s[*i])) return false;
  uint64_t x = 0;
  while (*i < s.size() && digit(s[*i])) x = x * 10 + static_cast<uint64_t>(s[(*i)++] - '0');
  *v = x;
  return true;
}

std::string parent_of(const std::string& p) {
  const size_t slash = p.rfind('/');
  return slash == 0 ? "/" : p.substr(0, slash);
}

bool in_subtree(const std::string& p, const std::string& root) {
  if (root == "/") return true;
  return p == root || (p.size() > root.size() && p.compare(0, root.size(), root) == 0 &&
                       p[root.size()] == '/');
}

// "MAJ:MIN" then white space, as every blkg_conf file starts; sets *i past the device.
bool parse_dev(const std::string& in, size_t* i, unsigned* maj, unsigned* min) {
  uint64_t major, minor;
  while (*i < in.size() && space(in[*i])) ++*i;
  if (!digits(in, i, &major) || *i >= in.size() || in[*i] != ':') return false;
  ++*i;
  while (*i < in.size() && space(in[*i])) ++*i;
  if (!digits(in, i, &minor) || *i >= in.size() || !space(in[*i])) return false;
  *maj = static_cast<uint32_t>(major);
  *min = static_cast<uint32_t>(minor);
  return true;
}

}  // namespace

IomaxParse iomax_parse(const std::string& in) {
  IomaxParse r;
  size_t i = 0;
  if (!parse_dev(in, &i, &r.major, &r.minor)) {
    r.err = EINVAL;
    return r;
  }
  r.dev_ok = true;
  // Tokens: runs of non-space characters, each read 26 characters at a time.
  std::vector<std::string> tokens;
  while (i < in.size()) {
    if (space(in[i])) {
      ++i;
      continue;
    }
    size_t j = i;
    while (j < in.size() && !space(in[j])) ++j;
    for (size_t k = i; k < j; k += 26) tokens.push_back(in.substr(k, std::min<size_t>(26, j - k)));
    i = j;
  }
  static const char* const keys[4] = {"rbps", "wbps", "riops", "wiops"};
  for (const std::string& t : tokens) {
    const size_t eq = t.find('=');
    if (eq == std::string::npos) {
      r.err = EINVAL;
      return r;
    }
    const std::string key = t.substr(0, eq), val = t.substr(eq + 1);
    uint64_t v = UINT64_MAX;
    size_t p = 0;
    if (!digits(val, &p, &v) && val != "max") {
      r.err = EINVAL;
      return r;
    }
    if (v == 0) {
      r.err = ERANGE;
      return r;
    }
    int k = -1;
    for (int x = 0; x < 4; ++x)
      if (key == keys[x]) k = x;
    if (k < 0) {
      r.err = EINVAL;
      return r;
    }
    r.set[k] = true;
    r.value[k] = k >= 2 && v > UINT32_MAX ? UINT32_MAX : v;
  }
  return r;
}

V1LimitParse v1_limit_parse(const std::string& in) {
  V1LimitParse r;
  size_t i = 0;
  if (!parse_dev(in, &i, &r.major, &r.minor)) {
    r.err = EINVAL;
    return r;
  }
  r.dev_ok = true;
  while (i < in.size() && space(in[i])) ++i;
  if (!digits(in, &i, &r.value)) r.err = EINVAL;  // what follows the number is ignored
  return r;
}

std::string iomax_line(const std::string& dev, const uint64_t l[4]) {
  const uint64_t none[4] = {UINT64_MAX, UINT64_MAX, UINT32_MAX, UINT32_MAX};
  if (l[0] == none[0] && l[1] == none[1] && l[2] == none[2] && l[3] == none[3]) return "";
  static const char* const keys[4] = {"rbps", "wbps", "riops", "wiops"};
  std::string s = dev;
  for (int i = 0; i < 4; ++i)
    s += std::string(" ") + keys[i] + "=" + (l[i] == none[i] ? "max" : std::to_string(l[i]));
  return s;
}

Model::Model() { alive_.insert("/"); }

int Model::predict_mkdir(const std::string& path) const {
  if (path == "/" || alive_.count(path)) return -EEXIST;
  if (!alive_.count(parent_of(path))) return -ENOENT;
  return 0;
}

int Model::predict_rmdir(const std::string& path) const {
  if (path == "/") return -EINVAL;
  if (!alive_.count(path)) return -ENOENT;
  for (const std::string& p : alive_)
    if (p != path && in_subtree(p, path)) return -EBUSY;
  for (const auto& [pid, p] : procs_)
    if (p == path) return -EBUSY;
  return 0;
}

void Model::mkdir(const std::string& path, int id) {
  alive_.insert(path);
  const std::string parent = parent_of(path);
  parent_id_[id] = parent == "/" ? root_id_ : id_of_path_[parent];
  id_of_path_[path] = id;
}

bool Model::below(int id, int ancestor) const {
  for (int guard = 0; guard < 100000; ++guard) {
    if (id == ancestor) return true;
    auto it = parent_id_.find(id);
    if (it == parent_id_.end()) return false;
    id = it->second;
  }
  return false;
}

void Model::rmdir(const std::string& path) {
  alive_.erase(path);
  id_of_path_.erase(path);
  for (auto it = limits_.begin(); it != limits_.end();)
    it = it->first.first == path ? limits_.erase(it) : std::next(it);
}

void Model::attach(int pid, const std::string& path) { procs_[pid] = path; }

void Model::disk_added(const std::string& dev) { disk_state_[dev] = 1; }
void Model::disk_deleted(const std::string& dev) {
  if (disk_state_.count(dev)) disk_state_[dev] = 2;
}
void Model::disk_released(const std::string& dev) {
  disk_state_.erase(dev);
  for (auto it = stats_.begin(); it != stats_.end();)  // the disk and its lines are gone
    it = it->first.second == dev ? stats_.erase(it) : std::next(it);
  for (auto it = limits_.begin(); it != limits_.end();)
    it = it->first.second == dev ? limits_.erase(it) : std::next(it);
}
bool Model::disk_live(const std::string& dev) const {
  auto it = disk_state_.find(dev);
  return it != disk_state_.end() && it->second == 1;
}

long Model::predict_iomax_write(const std::string& path, const std::string& data) const {
  const IomaxParse p = iomax_parse(data);
  if (!p.dev_ok) return -EINVAL;
  if (!disk_live(std::to_string(p.major) + ":" + std::to_string(p.minor))) return -ENODEV;
  if (p.err) return -p.err;
  (void)path;
  return static_cast<long>(data.size());
}

void Model::iomax_written(const std::string& path, const std::string& data) {
  const IomaxParse p = iomax_parse(data);
  const std::string dev = std::to_string(p.major) + ":" + std::to_string(p.minor);
  auto& l = limits_[{path, dev}];
  if (l.empty()) l = {UINT64_MAX, UINT64_MAX, UINT32_MAX, UINT32_MAX};
  for (int k = 0; k < 4; ++k)
    if (p.set[k]) l[k] = p.value[k];
}

std::string Model::check_iomax_read(const std::string& path, const std::string& text) const {
  std::multiset<std::string> want, got;
  for (const auto& [key, l] : limits_) {
    if (key.first != path) continue;
    const std::string line = iomax_line(key.second, l.data());
    if (!line.empty()) want.insert(line);
  }
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) got.insert(line);
  if (!text.empty() && text.back() != '\n') return "io.max of " + path + ": no final newline";
  if (want == got) return "";
  std::string w, g;
  for (const auto& x : want) w += x + "\\n";
  for (const auto& x : got) g += x + "\\n";
  return "io.max of " + path + ": model has {" + w + "}, implementation printed {" + g + "}";
}

void Model::account(int id, const std::string& dev, int type, uint64_t bytes, bool first_piece) {
  Counters& c = stats_[{id, dev}];
  if (first_piece) c.bytes[type] += bytes;
  c.ios[type] += 1;
}

std::string Model::check_iostat_read(const std::string& path, const std::string& text) const {
  std::istringstream in(text);
  std::string line;
  std::set<std::string> seen;
  while (std::getline(in, line)) {
    const size_t sp = line.find(' ');
    if (sp == std::string::npos) return "io.stat of " + path + ": line without a space: " + line;
    const std::string dev = line.substr(0, sp);
    if (!seen.insert(dev).second) return "io.stat of " + path + ": device " + dev + " twice";
    Counters want;
    const auto self = id_of_path_.find(path);
    for (const auto& [key, c] : stats_) {
      if (key.second != dev) continue;
      if (path != "/" && (self == id_of_path_.end() || !below(key.first, self->second))) continue;
      for (int t = 0; t < 3; ++t) {
        want.bytes[t] += c.bytes[t];
        want.ios[t] += c.ios[t];
      }
    }
    const std::string rest = line.substr(sp + 1);
    char expect[200];
    snprintf(expect, sizeof(expect), "rbytes=%llu wbytes=%llu rios=%llu wios=%llu dbytes=%llu dios=%llu",
             (unsigned long long)want.bytes[0], (unsigned long long)want.bytes[1],
             (unsigned long long)want.ios[0], (unsigned long long)want.ios[1],
             (unsigned long long)want.bytes[2], (unsigned long long)want.ios[2]);
    const bool rw_zero = !want.bytes[0] && !want.bytes[1] && !want.ios[0] && !want.ios[1];
    if (rest.empty()) {
      if (!rw_zero) return "io.stat of " + path + " " + dev + ": empty line, model has " + expect;
    } else if (rest != expect) {
      return "io.stat of " + path + " " + dev + ": printed '" + rest + "', model has '" + expect + "'";
    }
  }
  return "";
}

}  // namespace oracle
