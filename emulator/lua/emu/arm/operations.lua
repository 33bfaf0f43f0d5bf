--- emu.arm.operations: polling URLs of long-running operations (emu.lro), under any ARM
-- path: .../operationStatuses/{opid} (Azure-AsyncOperation) and .../operationResults/{opid}
-- (Location). Authenticated like every ARM call; the operation id is the capability.
local arm = require("emu.arm")
local lro = require("emu.lro")

local M = {}

arm.route({ method = "GET", path = "/{*prefix}/operationStatuses/{opid}", handler = lro.handle_status })
arm.route({ method = "GET", path = "/{*prefix}/operationResults/{opid}", handler = lro.handle_result })

return M
