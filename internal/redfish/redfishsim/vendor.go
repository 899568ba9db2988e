package redfishsim

// Vendor picks the resource shapes of a well-known BMC family. The shapes
// (ids, allowed values, OEM sections, answers) are modelled on the vendors'
// public Redfish documentation; they are not copies of real payloads.
type Vendor string

// The vendor variants.
const (
	// Dell iDRAC: System.Embedded.1 / iDRAC.Embedded.1, PowerCycle offered,
	// UefiHttp boot with HttpBootUri, Reset answered 204, PATCH answered 200
	// with @Message.ExtendedInfo, On when on refused with 409.
	Dell Vendor = "dell"
	// HPE iLO: Systems/1 with trailing slashes in @odata.id, no PowerCycle
	// (ForceOff then On), PushPowerButton, Oem.Hpe, answers 200 with an
	// iLO.2.x message.
	HPE Vendor = "hpe"
	// Lenovo XCC: Systems/1, ForceOn besides On, no PowerCycle, no UefiHttp
	// boot target, Oem.Lenovo.
	Lenovo Vendor = "lenovo"
	// Supermicro: Systems/1, Reset types only in a ResetActionInfo resource
	// (@Redfish.ActionInfo) rather than inline, UefiHttp, Oem.Supermicro.
	Supermicro Vendor = "supermicro"
)

// Vendors lists the variants.
var Vendors = []Vendor{Dell, HPE, Lenovo, Supermicro}

// shape is what differs between the variants.
type shape struct {
	manufacturer, model, bios string
	systemID, managerID       string
	trailingSlash             bool     // @odata.id values end in "/" (iLO)
	resetTypes                []string // allowed Reset types
	actionInfo                bool     // Reset types in ResetActionInfo, not inline
	bootTargets               []string
	httpBootURI               bool // the Boot object has HttpBootUri
	conflictOnRedundant       bool // On when on (ForceOff when off) is a 409
	oem                       func(serial string) map[string]any
	resetStatus               int // status of a synchronous Reset answer
	patchStatus               int // status of a PATCH answer
}

func shapeOf(v Vendor) shape {
	switch v {
	case HPE:
		return shape{
			manufacturer: "HPE", model: "ProLiant DL360 Gen10 Plus", bios: "U46 v2.72 (09/04/2025)",
			systemID: "1", managerID: "1", trailingSlash: true,
			resetTypes:  []string{"On", "ForceOff", "GracefulShutdown", "ForceRestart", "Nmi", "PushPowerButton", "GracefulRestart"},
			bootTargets: []string{"None", "Cd", "Hdd", "Usb", "SDCard", "Utilities", "Diags", "BiosSetup", "Pxe", "UefiShell", "UefiHttp", "UefiTarget"},
			httpBootURI: true,
			oem: func(serial string) map[string]any {
				return map[string]any{"Hpe": map[string]any{"@odata.type": "#HpeComputerSystemExt.v2_10_0.HpeComputerSystemExt", "PostState": "FinishedPost", "ServerSignature": serial}}
			},
			resetStatus: 200, patchStatus: 200,
		}
	case Lenovo:
		return shape{
			manufacturer: "Lenovo", model: "ThinkSystem SR650 V3", bios: "ESE124B-3.10",
			systemID: "1", managerID: "1",
			resetTypes:  []string{"On", "Nmi", "GracefulShutdown", "GracefulRestart", "ForceOn", "ForceOff", "ForceRestart"},
			bootTargets: []string{"None", "Pxe", "Cd", "Usb", "Hdd", "BiosSetup", "Diags", "UefiTarget"},
			oem: func(serial string) map[string]any {
				return map[string]any{"Lenovo": map[string]any{"@odata.type": "#LenovoComputerSystem.v1_0_0.LenovoComputerSystem", "SystemStatus": "OSBooted", "FrontPanelUSB": map[string]any{"PortSwitchingTo": "BMC"}}}
			},
			resetStatus: 204, patchStatus: 200,
		}
	case Supermicro:
		return shape{
			manufacturer: "Supermicro", model: "SYS-121H-TNR", bios: "2.1",
			systemID: "1", managerID: "1", actionInfo: true,
			resetTypes:  []string{"On", "ForceOff", "GracefulShutdown", "GracefulRestart", "ForceRestart", "Nmi", "ForceOn"},
			bootTargets: []string{"None", "Pxe", "Floppy", "Cd", "Usb", "Hdd", "BiosSetup", "UsbCd", "UefiBootNext", "UefiHttp"},
			httpBootURI: true,
			oem: func(string) map[string]any {
				return map[string]any{"Supermicro": map[string]any{"@odata.type": "#SmcSystemExtensions.v1_0_0.System", "NodeManager": map[string]any{"@odata.id": "/redfish/v1/Systems/1/Oem/Supermicro/NodeManager"}}}
			},
			resetStatus: 200, patchStatus: 200,
		}
	default: // Dell
		return shape{
			manufacturer: "Dell Inc.", model: "PowerEdge R660", bios: "2.3.5",
			systemID: "System.Embedded.1", managerID: "iDRAC.Embedded.1",
			resetTypes:          []string{"On", "ForceOff", "ForceRestart", "GracefulRestart", "GracefulShutdown", "PushPowerButton", "Nmi", "PowerCycle"},
			bootTargets:         []string{"None", "Pxe", "Floppy", "Cd", "Hdd", "BiosSetup", "Utilities", "UefiTarget", "SDCard", "UefiHttp"},
			httpBootURI:         true,
			conflictOnRedundant: true,
			oem: func(string) map[string]any {
				return map[string]any{"Dell": map[string]any{"DellSystem": map[string]any{"@odata.type": "#DellSystem.v1_4_0.DellSystem", "CurrentRollupStatus": "Ok", "LastSystemInventoryTime": "2026-12-01T08:00:00-06:00"}}}
			},
			resetStatus: 204, patchStatus: 200,
		}
	}
}
