// Logging: vineyardd's log level and format (--log_level, --log_format), on spdlog.
//
// Thread-safety: call once at start-up, before any other thread logs.
#pragma once

#include <string>

namespace vineyard {

/// `level`: an spdlog level name ("" : info). `format`: "text" (a timestamp, the
/// level and the message) or "json" (one object per line with "time", "level" and
/// "message", the message escaped as a JSON string).
void ConfigureLogging(const std::string& level, const std::string& format);

}  // namespace vineyard
