package redfishsim

import (
	"encoding/json"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"
)

// route serves an authorized request for path p (no trailing slash).
func (s *Sim) route(w http.ResponseWriter, r *http.Request, p, sid string) {
	const (
		sessions = "/redfish/v1/SessionService/Sessions"
		systems  = "/redfish/v1/Systems"
		tasks    = "/redfish/v1/TaskService/Tasks"
		monitors = "/redfish/v1/TaskService/TaskMonitors"
	)
	get := r.Method == http.MethodGet || r.Method == http.MethodHead
	switch {
	case p == "/redfish/v1/SessionService" && get:
		s.json(w, 200, map[string]any{"@odata.id": "/redfish/v1/SessionService", "Id": "SessionService", "Name": "Session Service", "ServiceEnabled": true, "SessionTimeout": 1800, "Sessions": s.id(sessions)})
	case p == sessions && get:
		s.mu.Lock()
		var ids []string
		for _, id := range s.sessions {
			ids = append(ids, id)
		}
		s.mu.Unlock()
		slices.Sort(ids)
		s.collection(w, sessions, "Session Collection", prefixAll(sessions+"/", ids))
	case strings.HasPrefix(p, sessions+"/"):
		s.session(w, r, strings.TrimPrefix(p, sessions+"/"), sid)
	case p == systems && get:
		var ps []string
		for i := range s.systems {
			ps = append(ps, s.SystemPath(i))
		}
		s.collection(w, systems, "Computer System Collection", ps)
	case strings.HasPrefix(p, systems+"/"):
		rest := strings.TrimPrefix(p, systems+"/")
		id, sub, _ := strings.Cut(rest, "/")
		i := slices.IndexFunc(s.systems, func(sy *system) bool { return sy.id == id })
		if i < 0 {
			s.notFound(w, p)
			return
		}
		s.system(w, r, i, sub)
	case p == "/redfish/v1/Managers" && get:
		s.collection(w, p, "Manager Collection", []string{p + "/" + s.shape.managerID})
	case p == "/redfish/v1/Managers/"+s.shape.managerID && get:
		s.json(w, 200, map[string]any{"@odata.id": p, "@odata.type": "#Manager.v1_10_0.Manager", "Id": s.shape.managerID, "Name": "Manager", "ManagerType": "BMC", "FirmwareVersion": "7.00.00.00", "Status": map[string]any{"State": "Enabled", "Health": "OK"}})
	case p == "/redfish/v1/Chassis" && get:
		s.collection(w, p, "Chassis Collection", []string{p + "/" + s.shape.systemID})
	case p == "/redfish/v1/Chassis/"+s.shape.systemID && get:
		s.json(w, 200, map[string]any{"@odata.id": p, "@odata.type": "#Chassis.v1_14_0.Chassis", "Id": s.shape.systemID, "Name": "Chassis", "ChassisType": "RackMount", "Manufacturer": s.shape.manufacturer, "Model": s.shape.model, "PowerState": onOff(s.Power(0))})
	case p == "/redfish/v1/TaskService" && get:
		s.json(w, 200, map[string]any{"@odata.id": p, "Id": "TaskService", "Name": "Task Service", "ServiceEnabled": true, "Tasks": s.id(tasks)})
	case p == tasks && get:
		s.mu.Lock()
		var ids []string
		for id := range s.tasks {
			ids = append(ids, id)
		}
		s.mu.Unlock()
		slices.Sort(ids)
		s.collection(w, tasks, "Task Collection", prefixAll(tasks+"/", ids))
	case strings.HasPrefix(p, tasks+"/") && get:
		s.task(w, strings.TrimPrefix(p, tasks+"/"), false)
	case strings.HasPrefix(p, monitors+"/") && get:
		s.task(w, strings.TrimPrefix(p, monitors+"/"), true)
	default:
		s.notFound(w, p)
	}
}

func prefixAll(prefix string, ids []string) []string {
	out := make([]string, len(ids))
	for i, id := range ids {
		out[i] = prefix + id
	}
	return out
}

func onOff(on bool) string {
	if on {
		return "On"
	}
	return "Off"
}

func (s *Sim) notFound(w http.ResponseWriter, p string) {
	s.fail(w, http.StatusNotFound, "Base.1.8.ResourceMissingAtURI", "The resource at the URI "+p+" was not found.")
}

func (s *Sim) collection(w http.ResponseWriter, p, name string, members []string) {
	m := make([]any, len(members))
	for i, x := range members {
		m[i] = s.id(x)
	}
	s.json(w, 200, map[string]any{"@odata.id": s.id(p)["@odata.id"], "Name": name, "Members": m, "Members@odata.count": len(m)})
}

func (s *Sim) session(w http.ResponseWriter, r *http.Request, id, sid string) {
	s.mu.Lock()
	var tok string
	for t, i := range s.sessions {
		if i == id {
			tok = t
		}
	}
	s.mu.Unlock()
	if tok == "" {
		s.notFound(w, r.URL.Path)
		return
	}
	switch r.Method {
	case http.MethodGet:
		s.json(w, 200, map[string]any{"@odata.id": "/redfish/v1/SessionService/Sessions/" + id, "Id": id, "Name": "User Session", "UserName": s.opts.User})
	case http.MethodDelete:
		s.mu.Lock()
		delete(s.sessions, tok)
		s.mu.Unlock()
		w.WriteHeader(http.StatusNoContent)
	default:
		s.fail(w, http.StatusMethodNotAllowed, "Base.1.8.OperationNotAllowed", "The operation is not allowed on this resource.")
	}
}

// system serves /redfish/v1/Systems/ID[/sub].
func (s *Sim) system(w http.ResponseWriter, r *http.Request, i int, sub string) {
	base := s.SystemPath(i)
	switch {
	case sub == "" && r.Method == http.MethodGet:
		s.json(w, 200, s.systemDoc(i))
	case sub == "" && r.Method == http.MethodPatch:
		s.patchBoot(w, r, i)
	case sub == "Actions/ComputerSystem.Reset" && r.Method == http.MethodPost:
		s.reset(w, r, i)
	case sub == "ResetActionInfo" && s.shape.actionInfo && r.Method == http.MethodGet:
		s.json(w, 200, map[string]any{"@odata.id": base + "/ResetActionInfo", "@odata.type": "#ActionInfo.v1_1_2.ActionInfo", "Id": "ResetActionInfo", "Name": "Reset Action Info",
			"Parameters": []any{map[string]any{"Name": "ResetType", "Required": true, "DataType": "String", "AllowableValues": s.shape.resetTypes}}})
	case sub == "EthernetInterfaces" && r.Method == http.MethodGet:
		var ps []string
		for n := range s.systems[i].macs {
			ps = append(ps, base+"/EthernetInterfaces/NIC."+strconv.Itoa(n+1))
		}
		s.collection(w, base+"/EthernetInterfaces", "Ethernet Interface Collection", ps)
	case strings.HasPrefix(sub, "EthernetInterfaces/NIC.") && r.Method == http.MethodGet:
		n, err := strconv.Atoi(strings.TrimPrefix(sub, "EthernetInterfaces/NIC."))
		macs := s.systems[i].macs
		if err != nil || n < 1 || n > len(macs) {
			s.notFound(w, r.URL.Path)
			return
		}
		s.json(w, 200, map[string]any{"@odata.id": s.id(base + "/" + sub)["@odata.id"], "@odata.type": "#EthernetInterface.v1_6_0.EthernetInterface",
			"Id": "NIC." + strconv.Itoa(n), "Name": "NIC " + strconv.Itoa(n), "MACAddress": strings.ToUpper(macs[n-1]), "PermanentMACAddress": strings.ToUpper(macs[n-1]),
			"LinkStatus": "LinkUp", "Status": map[string]any{"State": "Enabled", "Health": "OK"}})
	default:
		s.notFound(w, r.URL.Path)
	}
}

func (s *Sim) systemDoc(i int) map[string]any {
	s.mu.Lock()
	defer s.mu.Unlock()
	sy := s.systems[i]
	base := s.SystemPath(i)
	boot := map[string]any{
		"BootSourceOverrideEnabled":                        sy.boot.enabled,
		"BootSourceOverrideTarget":                         sy.boot.target,
		"BootSourceOverrideTarget@Redfish.AllowableValues": s.shape.bootTargets,
		"BootSourceOverrideMode":                           sy.boot.mode,
	}
	if s.shape.httpBootURI {
		boot["HttpBootUri"] = sy.boot.uri
	}
	reset := map[string]any{"target": base + "/Actions/ComputerSystem.Reset"}
	if s.shape.actionInfo {
		reset["@Redfish.ActionInfo"] = base + "/ResetActionInfo"
	} else {
		reset["ResetType@Redfish.AllowableValues"] = s.shape.resetTypes
	}
	return map[string]any{
		"@odata.id": s.id(base)["@odata.id"], "@odata.type": "#ComputerSystem.v1_20_0.ComputerSystem",
		"Id": sy.id, "Name": "System", "SystemType": "Physical",
		"Manufacturer": s.shape.manufacturer, "Model": s.shape.model, "SerialNumber": sy.serial, "BiosVersion": s.shape.bios,
		"PowerState": onOff(sy.powered()), "Status": map[string]any{"State": "Enabled", "Health": "OK"},
		"Boot":               boot,
		"Actions":            map[string]any{"#ComputerSystem.Reset": reset},
		"EthernetInterfaces": s.id(base + "/EthernetInterfaces"),
		"Links":              map[string]any{"ManagedBy": []any{s.id("/redfish/v1/Managers/" + s.shape.managerID)}, "Chassis": []any{s.id("/redfish/v1/Chassis/" + s.shape.systemID)}},
		"Oem":                s.shape.oem(sy.serial),
	}
}

// patchBoot applies a PATCH of the system's Boot object.
func (s *Sim) patchBoot(w http.ResponseWriter, r *http.Request, i int) {
	var body struct {
		Boot *struct {
			BootSourceOverrideEnabled, BootSourceOverrideTarget, BootSourceOverrideMode *string
			HttpBootUri                                                                 *string //nolint:revive // the Redfish name
		}
	}
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<16))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&body); err != nil || body.Boot == nil {
		s.fail(w, http.StatusBadRequest, "Base.1.8.PropertyUnknown", "Only the Boot override properties can be changed here.")
		return
	}
	b := body.Boot
	bad := func(prop, v string) {
		s.fail(w, http.StatusBadRequest, "Base.1.8.PropertyValueNotInList", "The value "+v+" for the property "+prop+" is not in the list of acceptable values.")
	}
	if b.BootSourceOverrideEnabled != nil && !slices.Contains([]string{"Disabled", "Once", "Continuous"}, *b.BootSourceOverrideEnabled) {
		bad("BootSourceOverrideEnabled", *b.BootSourceOverrideEnabled)
		return
	}
	if b.BootSourceOverrideTarget != nil && !slices.Contains(s.shape.bootTargets, *b.BootSourceOverrideTarget) {
		bad("BootSourceOverrideTarget", *b.BootSourceOverrideTarget)
		return
	}
	if b.BootSourceOverrideMode != nil && !slices.Contains([]string{"UEFI", "Legacy"}, *b.BootSourceOverrideMode) {
		bad("BootSourceOverrideMode", *b.BootSourceOverrideMode)
		return
	}
	if b.HttpBootUri != nil && !s.shape.httpBootURI {
		s.fail(w, http.StatusBadRequest, "Base.1.8.PropertyUnknown", "The property HttpBootUri is not in the list of valid properties for the resource.")
		return
	}
	s.mu.Lock()
	sy := s.systems[i]
	keep := !s.faults.DropBoot
	if keep {
		set := func(dst *string, v *string) {
			if v != nil {
				*dst = *v
			}
		}
		set(&sy.boot.enabled, b.BootSourceOverrideEnabled)
		set(&sy.boot.target, b.BootSourceOverrideTarget)
		set(&sy.boot.mode, b.BootSourceOverrideMode)
		set(&sy.boot.uri, b.HttpBootUri)
	}
	boot := sy.boot
	m := sy.machine
	s.mu.Unlock()
	// UEFI HTTP boot arms the machine's network boot too: the simulated
	// firmware has one network boot, which asks the daemon for the node's
	// script either way.
	if keep && m != nil && boot.enabled != "Disabled" && (boot.target == "Pxe" || boot.target == "UefiHttp") {
		if err := m.SetNextBootPXE(boot.mode == "UEFI" || boot.target == "UefiHttp"); err != nil {
			s.fail(w, http.StatusInternalServerError, "Base.1.8.InternalError", "The machine did not take the boot override: "+err.Error())
			return
		}
	}
	if s.opts.AsyncReset {
		s.mu.Lock()
		defer s.mu.Unlock()
		s.accept(w)
		return
	}
	s.success(w, s.shape.patchStatus)
}

// success answers a change: 204, or 200 with a Base.Success message.
func (s *Sim) success(w http.ResponseWriter, code int) {
	if code == http.StatusNoContent {
		w.WriteHeader(code)
		return
	}
	id := "Base.1.8.Success"
	if s.opts.Vendor == HPE {
		id = "iLO.2.15.Success"
	}
	s.json(w, code, map[string]any{"@Message.ExtendedInfo": []any{map[string]any{"MessageId": id, "Message": "Successfully Completed Request", "Severity": "OK"}}})
}

// reset runs a ComputerSystem.Reset action.
func (s *Sim) reset(w http.ResponseWriter, r *http.Request, i int) {
	var body struct{ ResetType string }
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<16)).Decode(&body); err != nil {
		s.fail(w, http.StatusBadRequest, "Base.1.8.MalformedJSON", "The request body submitted was malformed JSON.")
		return
	}
	if !slices.Contains(s.shape.resetTypes, body.ResetType) {
		s.fail(w, http.StatusBadRequest, "Base.1.8.ActionParameterValueNotInList", "The value "+strconv.Quote(body.ResetType)+" for the parameter ResetType is not in the list of acceptable values.")
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	sy := s.systems[i]
	on := sy.powered()
	if s.shape.conflictOnRedundant && ((body.ResetType == "On" && on) || (body.ResetType == "ForceOff" && !on)) {
		s.fail(w, http.StatusConflict, "Base.1.8.ResourceInStandby", "The requested operation cannot be performed: the server is already powered "+strings.ToUpper(onOff(on))+".")
		return
	}
	s.resets = append(s.resets, sy.id+" "+body.ResetType)
	var err error
	switch body.ResetType {
	case "On", "ForceOn":
		if !on {
			err = sy.setPower(true)
			sy.booted()
		}
	case "ForceOff", "GracefulShutdown":
		err = sy.setPower(false)
	case "PushPowerButton":
		err = sy.setPower(!on)
		if !on {
			sy.booted()
		}
	case "ForceRestart", "GracefulRestart":
		if sy.machine != nil {
			err = sy.machine.Reset()
		} else {
			sy.on = true
		}
		sy.booted()
	case "PowerCycle":
		if sy.machine != nil {
			err = sy.machine.PowerCycle()
		} else {
			sy.on = true
		}
		sy.booted()
	case "Nmi":
	}
	if err != nil {
		s.fail(w, http.StatusInternalServerError, "Base.1.8.InternalError", "The machine did not take the reset: "+err.Error())
		return
	}
	if s.opts.AsyncReset || s.faults.TaskStuck {
		s.accept(w)
		return
	}
	if s.shape.resetStatus == http.StatusNoContent {
		w.WriteHeader(http.StatusNoContent)
		return
	}
	s.json(w, s.shape.resetStatus, map[string]any{"@Message.ExtendedInfo": []any{map[string]any{"MessageId": "Base.1.8.Success", "Message": "Successfully Completed Request", "Severity": "OK"}}})
}

func (t *task) current(now time.Time) string {
	if t.state == "Running" && !t.until.IsZero() && now.After(t.until) {
		t.state = "Completed"
	}
	return t.state
}

func (s *Sim) taskDoc(t *task) map[string]any {
	st := t.current(time.Now())
	pct := 50
	if st == "Completed" {
		pct = 100
	}
	return map[string]any{"@odata.id": "/redfish/v1/TaskService/Tasks/" + t.id, "@odata.type": "#Task.v1_5_0.Task", "Id": t.id, "Name": "Reset task",
		"TaskState": st, "TaskStatus": "OK", "PercentComplete": pct, "TaskMonitor": "/redfish/v1/TaskService/TaskMonitors/" + t.id}
}

// accept answers 202 with a new task's monitor in Location (Retry-After 1):
// it completes after TaskTime, or never with Faults.TaskStuck. The caller
// holds s.mu.
func (s *Sim) accept(w http.ResponseWriter) {
	s.nextID++
	t := &task{id: strconv.Itoa(s.nextID), state: "Running"}
	if !s.faults.TaskStuck {
		t.until = time.Now().Add(s.opts.TaskTime)
	}
	s.tasks[t.id] = t
	w.Header().Set("Location", "/redfish/v1/TaskService/TaskMonitors/"+t.id)
	w.Header().Set("Retry-After", "1")
	s.json(w, http.StatusAccepted, s.taskDoc(t))
}

// task serves a Task (monitor false) or its task monitor: 202 while it
// runs, then 200 with the Task.
func (s *Sim) task(w http.ResponseWriter, id string, monitor bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	t := s.tasks[id]
	if t == nil {
		s.fail(w, http.StatusNotFound, "Base.1.8.ResourceMissingAtURI", "No such task.")
		return
	}
	doc := s.taskDoc(t)
	if monitor && t.state == "Running" {
		w.Header().Set("Location", "/redfish/v1/TaskService/TaskMonitors/"+t.id)
		w.Header().Set("Retry-After", "1")
		s.json(w, http.StatusAccepted, doc)
		return
	}
	s.json(w, 200, doc)
}
