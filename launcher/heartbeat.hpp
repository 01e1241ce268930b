// launcher/heartbeat.hpp — a rank's proof of life for the launcher's hang detection.
//
// Any language can beat by touching the file named in COHORT_HEARTBEAT_FILE; C++ code
// calls cohort::launcher::heartbeat(). A rank that has beaten and then stays silent for the
// launcher's --heartbeat-timeout (600 s unless set) is treated as hung: its stack is dumped
// and the gang restarts.
#pragma once

namespace cohort::launcher {

// Marks this rank alive now. Cheap (one utimensat), safe to call from any thread, and a
// no-op when the rank was not started with a heartbeat file.
void heartbeat() noexcept;

}  // namespace cohort::launcher
