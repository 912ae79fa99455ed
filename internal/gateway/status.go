package gateway

import (
	"fmt"
	"net/netip"
	"reflect"
	"slices"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"
	"sigs.k8s.io/gateway-api/pkg/features"
)

// Features are the Gateway API features podpin implements, published in
// its GatewayClasses' status (the conformance suite tests exactly these).
var Features = []features.FeatureName{
	features.SupportGateway,
	features.SupportGatewayPort8080,
	features.SupportHTTPRoute,
	features.SupportReferenceGrant,
	features.SupportHTTPRouteHostRewrite,
	features.SupportHTTPRouteMethodMatching,
	features.SupportHTTPRouteParentRefPort,
	features.SupportHTTPRoutePathRedirect,
	features.SupportHTTPRoutePathRewrite,
	features.SupportHTTPRoutePortRedirect,
	features.SupportHTTPRouteQueryParamMatching,
	features.SupportHTTPRouteResponseHeaderModification,
	features.SupportHTTPRouteSchemeRedirect,
	features.SupportHTTPRoute303RedirectStatusCode,
	features.SupportHTTPRoute307RedirectStatusCode,
	features.SupportHTTPRoute308RedirectStatusCode,
	features.SupportHTTPRouteRequestTimeout,
	features.SupportHTTPRouteBackendTimeout,
	features.SupportHTTPRouteBackendProtocolH2C,
	features.SupportHTTPRouteBackendProtocolWebSocket,
	features.SupportHTTPRouteNamedRouteRule,
	features.SupportHTTPRouteDestinationPortMatching,
	features.SupportGatewayStaticAddresses,
	features.SupportGatewayAddressEmpty,
	features.SupportGatewayHTTPListenerIsolation,
	features.SupportGatewayHTTPSListenerDetectMisdirectedRequests,
	features.SupportGRPCRoute,
}

// classStatus is the status of one of podpin's GatewayClasses.
func classStatus(c *gwv1.GatewayClass) gwv1.GatewayClassStatus {
	accepted := cond(gwv1.GatewayClassConditionStatusAccepted, true, gwv1.GatewayClassReasonAccepted, "served by podpin")
	if c.Spec.ParametersRef != nil {
		accepted = cond(gwv1.GatewayClassConditionStatusAccepted, false, gwv1.GatewayClassReasonInvalidParameters,
			"podpin takes no parametersRef: its settings are HTTPRoute annotations")
	}
	s := gwv1.GatewayClassStatus{Conditions: slices.Clone(c.Status.Conditions)}
	setCondition(&s.Conditions, accepted, c.Generation)
	names := slices.Clone(Features)
	slices.Sort(names)
	for _, f := range names {
		s.SupportedFeatures = append(s.SupportedFeatures, gwv1.SupportedFeature{Name: gwv1.FeatureName(f)})
	}
	return s
}

// gatewayStatus is the status of a served Gateway.
func gatewayStatus(w *world, g *gw) gwv1.GatewayStatus {
	s := gwv1.GatewayStatus{Conditions: slices.Clone(g.obj.Status.Conditions)}
	gen := g.obj.Generation
	switch {
	case g.address != "":
		s.Addresses = []gwv1.GatewayStatusAddress{{Type: ptrTo(gwv1.IPAddressType), Value: g.address}}
	case !w.pool.IsValid():
		for _, a := range w.publish {
			typ := gwv1.HostnameAddressType
			if _, err := netip.ParseAddr(a); err == nil {
				typ = gwv1.IPAddressType
			}
			s.Addresses = append(s.Addresses, gwv1.GatewayStatusAddress{Type: ptrTo(typ), Value: a})
		}
	}

	valid := 0
	for _, l := range g.listeners {
		if l.accepted.Status == metav1.ConditionTrue {
			valid++
		}
	}
	switch {
	case g.addrUnsupported != "":
		setCondition(&s.Conditions, cond(gwv1.GatewayConditionAccepted, false, gwv1.GatewayReasonUnsupportedAddress, g.addrUnsupported), gen)
	case valid == len(g.listeners):
		setCondition(&s.Conditions, cond(gwv1.GatewayConditionAccepted, true, gwv1.GatewayReasonAccepted, "Gateway accepted"), gen)
	default:
		setCondition(&s.Conditions, cond(gwv1.GatewayConditionAccepted, valid > 0, gwv1.GatewayReasonListenersNotValid,
			fmt.Sprintf("%d of %d listeners are not valid", len(g.listeners)-valid, len(g.listeners))), gen)
	}
	switch {
	case g.addrUnsupported != "":
		setCondition(&s.Conditions, cond(gwv1.GatewayConditionProgrammed, false, gwv1.GatewayReasonInvalid, "not accepted: "+g.addrUnsupported), gen)
	case g.addrError != "":
		reason := gwv1.GatewayReasonAddressNotUsable
		if len(g.obj.Spec.Addresses) == 0 {
			reason = gwv1.GatewayReasonAddressNotAssigned
		}
		setCondition(&s.Conditions, cond(gwv1.GatewayConditionProgrammed, false, reason, g.addrError), gen)
	default:
		setCondition(&s.Conditions, cond(gwv1.GatewayConditionProgrammed, true, gwv1.GatewayReasonProgrammed, "listening"), gen)
	}

	for _, l := range g.listeners {
		var old []metav1.Condition
		for _, o := range g.obj.Status.Listeners {
			if o.Name == l.spec.Name {
				old = o.Conditions
			}
		}
		ls := gwv1.ListenerStatus{
			Name:           l.spec.Name,
			SupportedKinds: l.kinds,
			AttachedRoutes: l.attached,
			Conditions:     slices.Clone(old),
		}
		if l.accepted.Status != metav1.ConditionTrue {
			ls.SupportedKinds = []gwv1.RouteGroupKind{}
		}
		programmed := cond(gwv1.ListenerConditionProgrammed, true, gwv1.ListenerReasonProgrammed, "listening on "+l.socket)
		switch {
		case !l.ok:
			programmed = cond(gwv1.ListenerConditionProgrammed, false, gwv1.ListenerReasonInvalid, "not served: see the other conditions")
		case w.bound != nil && !w.bound(l.socket):
			programmed = cond(gwv1.ListenerConditionProgrammed, false, gwv1.ListenerReasonPending, "cannot listen on "+l.socket)
		}
		for _, c := range []metav1.Condition{l.accepted, l.resolved, l.conflict, programmed} {
			setCondition(&ls.Conditions, c, gen)
		}
		s.Listeners = append(s.Listeners, ls)
	}
	return s
}

// setCondition sets c, at generation gen, in conds; the transition time
// moves only when the status changes.
func setCondition(conds *[]metav1.Condition, c metav1.Condition, gen int64) {
	c.ObservedGeneration = gen
	meta.SetStatusCondition(conds, c)
}

// sameConditions reports whether two condition lists say the same,
// transition times aside.
func sameConditions(a, b []metav1.Condition) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		x, y := a[i], b[i]
		x.LastTransitionTime, y.LastTransitionTime = metav1.Time{}, metav1.Time{}
		if !reflect.DeepEqual(x, y) {
			return false
		}
	}
	return true
}
