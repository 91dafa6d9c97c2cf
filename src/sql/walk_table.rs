//! The table of every node type of PostgreSQL's raw parse tree and the fields of each that
//! hold further nodes, as pg_query 18.1 defines them (`pg_query::protobuf`).
//!
//! Derived mechanically from the message fields of pg_query's protobuf types: every field
//! whose protobuf type is a message is listed, so the walk reaches every node. When pg_query
//! is upgraded, a new field fails to be listed silently; the `exhaustive` test in `walk.rs`
//! and the compiler (a new `Node` variant breaks the `match`) catch most of it, and the
//! table must be re-derived for each pg_query release.

use pg_query::NodeRef;
use pg_query::protobuf::*;

use super::{Step, Walk};

walk_structs! {
    AArrayExpr as AArrayExpr => elements;
    AConst as AConst;
    AExpr as AExpr => name, lexpr, rexpr;
    AIndices as AIndices => lidx, uidx;
    AIndirection as AIndirection => arg, indirection;
    AStar as AStar;
    AccessPriv as AccessPriv => cols;
    Aggref as Aggref => xpr, aggargtypes, aggdirectargs, args, aggorder, aggdistinct, aggfilter;
    Alias as Alias => colnames;
    AlterCollationStmt as AlterCollationStmt => collname;
    AlterDatabaseRefreshCollStmt as AlterDatabaseRefreshCollStmt;
    AlterDatabaseSetStmt as AlterDatabaseSetStmt => setstmt;
    AlterDatabaseStmt as AlterDatabaseStmt => options;
    AlterDefaultPrivilegesStmt as AlterDefaultPrivilegesStmt => options, action;
    AlterDomainStmt as AlterDomainStmt => type_name, def;
    AlterEnumStmt as AlterEnumStmt => type_name;
    AlterEventTrigStmt as AlterEventTrigStmt;
    AlterExtensionContentsStmt as AlterExtensionContentsStmt => object;
    AlterExtensionStmt as AlterExtensionStmt => options;
    AlterFdwStmt as AlterFdwStmt => func_options, options;
    AlterForeignServerStmt as AlterForeignServerStmt => options;
    AlterFunctionStmt as AlterFunctionStmt => func, actions;
    AlterObjectDependsStmt as AlterObjectDependsStmt => relation, object, extname;
    AlterObjectSchemaStmt as AlterObjectSchemaStmt => relation, object;
    AlterOpFamilyStmt as AlterOpFamilyStmt => opfamilyname, items;
    AlterOperatorStmt as AlterOperatorStmt => opername, options;
    AlterOwnerStmt as AlterOwnerStmt => relation, object, newowner;
    AlterPolicyStmt as AlterPolicyStmt => table, roles, qual, with_check;
    AlterPublicationStmt as AlterPublicationStmt => options, pubobjects;
    AlterRoleSetStmt as AlterRoleSetStmt => role, setstmt;
    AlterRoleStmt as AlterRoleStmt => role, options;
    AlterSeqStmt as AlterSeqStmt => sequence, options;
    AlterStatsStmt as AlterStatsStmt => defnames, stxstattarget;
    AlterSubscriptionStmt as AlterSubscriptionStmt => publication, options;
    AlterSystemStmt as AlterSystemStmt => setstmt;
    AlterTableCmd as AlterTableCmd => newowner, def;
    AlterTableMoveAllStmt as AlterTableMoveAllStmt => roles;
    AlterTableSpaceOptionsStmt as AlterTableSpaceOptionsStmt => options;
    AlterTableStmt as AlterTableStmt => relation, cmds;
    AlterTsConfigurationStmt as AlterTsconfigurationStmt => cfgname, tokentype, dicts;
    AlterTsDictionaryStmt as AlterTsdictionaryStmt => dictname, options;
    AlterTypeStmt as AlterTypeStmt => type_name, options;
    AlterUserMappingStmt as AlterUserMappingStmt => user, options;
    AlternativeSubPlan as AlternativeSubPlan => xpr, subplans;
    ArrayCoerceExpr as ArrayCoerceExpr => xpr, arg, elemexpr;
    ArrayExpr as ArrayExpr => xpr, elements;
    AtAlterConstraint as AtalterConstraint;
    BitString as BitString;
    BoolExpr as BoolExpr => xpr, args;
    Boolean as Boolean;
    BooleanTest as BooleanTest => xpr, arg;
    CallContext as CallContext;
    CallStmt as CallStmt => funccall, funcexpr, outargs;
    CaseExpr as CaseExpr => xpr, arg, args, defresult;
    CaseTestExpr as CaseTestExpr => xpr;
    CaseWhen as CaseWhen => xpr, expr, result;
    CheckPointStmt as CheckPointStmt;
    ClosePortalStmt as ClosePortalStmt;
    ClusterStmt as ClusterStmt => relation, params;
    CoalesceExpr as CoalesceExpr => xpr, args;
    CoerceToDomain as CoerceToDomain => xpr, arg;
    CoerceToDomainValue as CoerceToDomainValue => xpr;
    CoerceViaIo as CoerceViaIo => xpr, arg;
    CollateClause as CollateClause => arg, collname;
    CollateExpr as CollateExpr => xpr, arg;
    ColumnDef as ColumnDef => type_name, raw_default, cooked_default, identity_sequence, coll_clause, constraints, fdwoptions;
    ColumnRef as ColumnRef => fields;
    CommentStmt as CommentStmt => object;
    CommonTableExpr as CommonTableExpr => aliascolnames, ctequery, search_clause, cycle_clause, ctecolnames, ctecoltypes, ctecoltypmods, ctecolcollations;
    CompositeTypeStmt as CompositeTypeStmt => typevar, coldeflist;
    Constraint as Constraint => raw_expr, keys, including, exclusions, options, where_clause, pktable, fk_attrs, pk_attrs, fk_del_set_cols, old_conpfeqop;
    ConstraintsSetStmt as ConstraintsSetStmt => constraints;
    ConvertRowtypeExpr as ConvertRowtypeExpr => xpr, arg;
    CopyStmt as CopyStmt => relation, query, attlist, options, where_clause;
    CreateAmStmt as CreateAmStmt => handler_name;
    CreateCastStmt as CreateCastStmt => sourcetype, targettype, func;
    CreateConversionStmt as CreateConversionStmt => conversion_name, func_name;
    CreateDomainStmt as CreateDomainStmt => domainname, type_name, coll_clause, constraints;
    CreateEnumStmt as CreateEnumStmt => type_name, vals;
    CreateEventTrigStmt as CreateEventTrigStmt => whenclause, funcname;
    CreateExtensionStmt as CreateExtensionStmt => options;
    CreateFdwStmt as CreateFdwStmt => func_options, options;
    CreateForeignServerStmt as CreateForeignServerStmt => options;
    CreateForeignTableStmt as CreateForeignTableStmt => base_stmt, options;
    CreateFunctionStmt as CreateFunctionStmt => funcname, parameters, return_type, options, sql_body;
    CreateOpClassItem as CreateOpClassItem => name, order_family, class_args, storedtype;
    CreateOpClassStmt as CreateOpClassStmt => opclassname, opfamilyname, datatype, items;
    CreateOpFamilyStmt as CreateOpFamilyStmt => opfamilyname;
    CreatePLangStmt as CreatePlangStmt => plhandler, plinline, plvalidator;
    CreatePolicyStmt as CreatePolicyStmt => table, roles, qual, with_check;
    CreatePublicationStmt as CreatePublicationStmt => options, pubobjects;
    CreateRangeStmt as CreateRangeStmt => type_name, params;
    CreateRoleStmt as CreateRoleStmt => options;
    CreateSchemaStmt as CreateSchemaStmt => authrole, schema_elts;
    CreateSeqStmt as CreateSeqStmt => sequence, options;
    CreateStatsStmt as CreateStatsStmt => defnames, stat_types, exprs, relations;
    CreateStmt as CreateStmt => relation, table_elts, inh_relations, partbound, partspec, of_typename, constraints, nnconstraints, options;
    CreateSubscriptionStmt as CreateSubscriptionStmt => publication, options;
    CreateTableAsStmt as CreateTableAsStmt => query, into;
    CreateTableSpaceStmt as CreateTableSpaceStmt => owner, options;
    CreateTransformStmt as CreateTransformStmt => type_name, fromsql, tosql;
    CreateTrigStmt as CreateTrigStmt => relation, funcname, args, columns, when_clause, transition_rels, constrrel;
    CreateUserMappingStmt as CreateUserMappingStmt => user, options;
    CreatedbStmt as CreatedbStmt => options;
    CteCycleClause as CtecycleClause => cycle_col_list, cycle_mark_value, cycle_mark_default;
    CteSearchClause as CtesearchClause => search_col_list;
    CurrentOfExpr as CurrentOfExpr => xpr;
    DeallocateStmt as DeallocateStmt;
    DeclareCursorStmt as DeclareCursorStmt => query;
    DefElem as DefElem => arg;
    DefineStmt as DefineStmt => defnames, args, definition;
    DeleteStmt as DeleteStmt => relation, using_clause, where_clause, returning_clause, with_clause;
    DiscardStmt as DiscardStmt;
    DistinctExpr as DistinctExpr => xpr, args;
    DoStmt as DoStmt => args;
    DropOwnedStmt as DropOwnedStmt => roles;
    DropRoleStmt as DropRoleStmt => roles;
    DropStmt as DropStmt => objects;
    DropSubscriptionStmt as DropSubscriptionStmt;
    DropTableSpaceStmt as DropTableSpaceStmt;
    DropUserMappingStmt as DropUserMappingStmt => user;
    DropdbStmt as DropdbStmt => options;
    ExecuteStmt as ExecuteStmt => params;
    ExplainStmt as ExplainStmt => query, options;
    FetchStmt as FetchStmt;
    FieldSelect as FieldSelect => xpr, arg;
    FieldStore as FieldStore => xpr, arg, newvals, fieldnums;
    Float as Float;
    FromExpr as FromExpr => fromlist, quals;
    FuncCall as FuncCall => funcname, args, agg_order, agg_filter, over;
    FuncExpr as FuncExpr => xpr, args;
    FunctionParameter as FunctionParameter => arg_type, defexpr;
    GrantRoleStmt as GrantRoleStmt => granted_roles, grantee_roles, opt, grantor;
    GrantStmt as GrantStmt => objects, privileges, grantees, grantor;
    GroupingFunc as GroupingFunc => xpr, args, refs;
    GroupingSet as GroupingSet => content;
    ImportForeignSchemaStmt as ImportForeignSchemaStmt => table_list, options;
    IndexElem as IndexElem => expr, collation, opclass, opclassopts;
    IndexStmt as IndexStmt => relation, index_params, index_including_params, options, where_clause, exclude_op_names;
    InferClause as InferClause => index_elems, where_clause;
    InferenceElem as InferenceElem => xpr, expr;
    InlineCodeBlock as InlineCodeBlock;
    InsertStmt as InsertStmt => relation, cols, select_stmt, on_conflict_clause, returning_clause, with_clause;
    IntList as IntList => items;
    Integer as Integer;
    IntoClause as IntoClause => rel, col_names, options, view_query;
    JoinExpr as JoinExpr => larg, rarg, using_clause, join_using_alias, quals, alias;
    JsonAggConstructor as JsonAggConstructor => output, agg_filter, agg_order, over;
    JsonArgument as JsonArgument => val;
    JsonArrayAgg as JsonArrayAgg => constructor, arg;
    JsonArrayConstructor as JsonArrayConstructor => exprs, output;
    JsonArrayQueryConstructor as JsonArrayQueryConstructor => query, output, format;
    JsonBehavior as JsonBehavior => expr;
    JsonConstructorExpr as JsonConstructorExpr => xpr, args, func, coercion, returning;
    JsonExpr as JsonExpr => xpr, formatted_expr, format, path_spec, returning, passing_names, passing_values, on_empty, on_error;
    JsonFormat as JsonFormat;
    JsonFuncExpr as JsonFuncExpr => context_item, pathspec, passing, output, on_empty, on_error;
    JsonIsPredicate as JsonIsPredicate => expr, format;
    JsonKeyValue as JsonKeyValue => key, value;
    JsonObjectAgg as JsonObjectAgg => constructor, arg;
    JsonObjectConstructor as JsonObjectConstructor => exprs, output;
    JsonOutput as JsonOutput => type_name, returning;
    JsonParseExpr as JsonParseExpr => expr, output;
    JsonReturning as JsonReturning => format;
    JsonScalarExpr as JsonScalarExpr => expr, output;
    JsonSerializeExpr as JsonSerializeExpr => expr, output;
    JsonTable as JsonTable => context_item, pathspec, passing, columns, on_error, alias;
    JsonTableColumn as JsonTableColumn => type_name, pathspec, format, columns, on_empty, on_error;
    JsonTablePath as JsonTablePath;
    JsonTablePathScan as JsonTablePathScan => plan, path, child;
    JsonTablePathSpec as JsonTablePathSpec => string;
    JsonTableSiblingJoin as JsonTableSiblingJoin => plan, lplan, rplan;
    JsonValueExpr as JsonValueExpr => raw_expr, formatted_expr, format;
    List as List => items;
    ListenStmt as ListenStmt;
    LoadStmt as LoadStmt;
    LockStmt as LockStmt => relations;
    LockingClause as LockingClause => locked_rels;
    MergeAction as MergeAction => qual, target_list, update_colnos;
    MergeStmt as MergeStmt => relation, source_relation, join_condition, merge_when_clauses, returning_clause, with_clause;
    MergeSupportFunc as MergeSupportFunc => xpr;
    MergeWhenClause as MergeWhenClause => condition, target_list, values;
    MinMaxExpr as MinMaxExpr => xpr, args;
    MultiAssignRef as MultiAssignRef => source;
    NamedArgExpr as NamedArgExpr => xpr, arg;
    NextValueExpr as NextValueExpr => xpr;
    NotifyStmt as NotifyStmt;
    NullIfExpr as NullIfExpr => xpr, args;
    NullTest as NullTest => xpr, arg;
    ObjectWithArgs as ObjectWithArgs => objname, objargs, objfuncargs;
    OidList as OidList => items;
    OnConflictClause as OnConflictClause => infer, target_list, where_clause;
    OnConflictExpr as OnConflictExpr => arbiter_elems, arbiter_where, on_conflict_set, on_conflict_where, excl_rel_tlist;
    OpExpr as OpExpr => xpr, args;
    Param as Param => xpr;
    ParamRef as ParamRef;
    PartitionBoundSpec as PartitionBoundSpec => listdatums, lowerdatums, upperdatums;
    PartitionCmd as PartitionCmd => name, bound;
    PartitionElem as PartitionElem => expr, collation, opclass;
    PartitionRangeDatum as PartitionRangeDatum => value;
    PartitionSpec as PartitionSpec => part_params;
    PlAssignStmt as PlassignStmt => indirection, val;
    PrepareStmt as PrepareStmt => argtypes, query;
    PublicationObjSpec as PublicationObjSpec => pubtable;
    PublicationTable as PublicationTable => relation, where_clause, columns;
    Query as Query => utility_stmt, cte_list, rtable, rteperminfos, jointree, merge_action_list, merge_join_condition, target_list, on_conflict, returning_list, group_clause, grouping_sets, having_qual, window_clause, distinct_clause, sort_clause, limit_offset, limit_count, row_marks, set_operations, constraint_deps, with_check_options;
    RangeFunction as RangeFunction => functions, alias, coldeflist;
    RangeSubselect as RangeSubselect => subquery, alias;
    RangeTableFunc as RangeTableFunc => docexpr, rowexpr, namespaces, columns, alias;
    RangeTableFuncCol as RangeTableFuncCol => type_name, colexpr, coldefexpr;
    RangeTableSample as RangeTableSample => relation, method, args, repeatable;
    RangeTblEntry as RangeTblEntry => alias, eref, tablesample, subquery, joinaliasvars, joinleftcols, joinrightcols, join_using_alias, functions, tablefunc, values_lists, coltypes, coltypmods, colcollations, groupexprs, security_quals;
    RangeTblFunction as RangeTblFunction => funcexpr, funccolnames, funccoltypes, funccoltypmods, funccolcollations;
    RangeTblRef as RangeTblRef;
    RangeVar as RangeVar => alias;
    RawStmt as RawStmt => stmt;
    ReassignOwnedStmt as ReassignOwnedStmt => roles, newrole;
    RefreshMatViewStmt as RefreshMatViewStmt => relation;
    ReindexStmt as ReindexStmt => relation, params;
    RelabelType as RelabelType => xpr, arg;
    RenameStmt as RenameStmt => relation, object;
    ReplicaIdentityStmt as ReplicaIdentityStmt;
    ResTarget as ResTarget => indirection, val;
    ReturnStmt as ReturnStmt => returnval;
    ReturningClause as ReturningClause => options, exprs;
    ReturningExpr as ReturningExpr => xpr, retexpr;
    ReturningOption as ReturningOption;
    RoleSpec as RoleSpec;
    RowCompareExpr as RowCompareExpr => xpr, opnos, opfamilies, inputcollids, largs, rargs;
    RowExpr as RowExpr => xpr, args, colnames;
    RowMarkClause as RowMarkClause;
    RtePermissionInfo as RtepermissionInfo;
    RuleStmt as RuleStmt => relation, where_clause, actions;
    ScalarArrayOpExpr as ScalarArrayOpExpr => xpr, args;
    SecLabelStmt as SecLabelStmt => object;
    SelectStmt as SelectStmt => distinct_clause, into_clause, target_list, from_clause, where_clause, group_clause, having_clause, window_clause, values_lists, sort_clause, limit_offset, limit_count, locking_clause, with_clause, larg, rarg;
    SetOperationStmt as SetOperationStmt => larg, rarg, col_types, col_typmods, col_collations, group_clauses;
    SetToDefault as SetToDefault => xpr;
    SortBy as SortBy => node, use_op;
    SortGroupClause as SortGroupClause;
    SqlValueFunction as SqlvalueFunction => xpr;
    StatsElem as StatsElem => expr;
    String as String;
    SubLink as SubLink => xpr, testexpr, oper_name, subselect;
    SubPlan as SubPlan => xpr, testexpr, param_ids, set_param, par_param, args;
    SubscriptingRef as SubscriptingRef => xpr, refupperindexpr, reflowerindexpr, refexpr, refassgnexpr;
    TableFunc as TableFunc => ns_uris, ns_names, docexpr, rowexpr, colnames, coltypes, coltypmods, colcollations, colexprs, coldefexprs, colvalexprs, passingvalexprs, plan;
    TableLikeClause as TableLikeClause => relation;
    TableSampleClause as TableSampleClause => args, repeatable;
    TargetEntry as TargetEntry => xpr, expr;
    TransactionStmt as TransactionStmt => options;
    TriggerTransition as TriggerTransition;
    TruncateStmt as TruncateStmt => relations;
    TypeCast as TypeCast => arg, type_name;
    TypeName as TypeName => names, typmods, array_bounds;
    UnlistenStmt as UnlistenStmt;
    UpdateStmt as UpdateStmt => relation, target_list, where_clause, from_clause, returning_clause, with_clause;
    VacuumRelation as VacuumRelation => relation, va_cols;
    VacuumStmt as VacuumStmt => options, rels;
    Var as Var => xpr;
    VariableSetStmt as VariableSetStmt => args;
    VariableShowStmt as VariableShowStmt;
    ViewStmt as ViewStmt => view, aliases, query, options;
    WindowClause as WindowClause => partition_clause, order_clause, start_offset, end_offset;
    WindowDef as WindowDef => partition_clause, order_clause, start_offset, end_offset;
    WindowFunc as WindowFunc => xpr, args, aggfilter, run_condition;
    WindowFuncRunCondition as WindowFuncRunCondition => xpr, arg;
    WithCheckOption as WithCheckOption => qual;
    WithClause as WithClause => ctes;
    XmlExpr as XmlExpr => xpr, named_args, arg_names, args;
    XmlSerialize as XmlSerialize => expr, type_name;
}

dispatch! {
    Alias,
    RangeVar,
    TableFunc,
    IntoClause,
    Var,
    Param,
    Aggref,
    GroupingFunc,
    WindowFunc,
    WindowFuncRunCondition,
    MergeSupportFunc,
    SubscriptingRef,
    FuncExpr,
    NamedArgExpr,
    OpExpr,
    DistinctExpr,
    NullIfExpr,
    ScalarArrayOpExpr,
    BoolExpr,
    SubLink,
    SubPlan,
    AlternativeSubPlan,
    FieldSelect,
    FieldStore,
    RelabelType,
    CoerceViaIo,
    ArrayCoerceExpr,
    ConvertRowtypeExpr,
    CollateExpr,
    CaseExpr,
    CaseWhen,
    CaseTestExpr,
    ArrayExpr,
    RowExpr,
    RowCompareExpr,
    CoalesceExpr,
    MinMaxExpr,
    SqlvalueFunction,
    XmlExpr,
    JsonFormat,
    JsonReturning,
    JsonValueExpr,
    JsonConstructorExpr,
    JsonIsPredicate,
    JsonBehavior,
    JsonExpr,
    JsonTablePath,
    JsonTablePathScan,
    JsonTableSiblingJoin,
    NullTest,
    BooleanTest,
    MergeAction,
    CoerceToDomain,
    CoerceToDomainValue,
    SetToDefault,
    CurrentOfExpr,
    NextValueExpr,
    InferenceElem,
    ReturningExpr,
    TargetEntry,
    RangeTblRef,
    JoinExpr,
    FromExpr,
    OnConflictExpr,
    Query,
    TypeName,
    ColumnRef,
    ParamRef,
    AExpr,
    TypeCast,
    CollateClause,
    RoleSpec,
    FuncCall,
    AStar,
    AIndices,
    AIndirection,
    AArrayExpr,
    ResTarget,
    MultiAssignRef,
    SortBy,
    WindowDef,
    RangeSubselect,
    RangeFunction,
    RangeTableFunc,
    RangeTableFuncCol,
    RangeTableSample,
    ColumnDef,
    TableLikeClause,
    IndexElem,
    DefElem,
    LockingClause,
    XmlSerialize,
    PartitionElem,
    PartitionSpec,
    PartitionBoundSpec,
    PartitionRangeDatum,
    PartitionCmd,
    RangeTblEntry,
    RtepermissionInfo,
    RangeTblFunction,
    TableSampleClause,
    WithCheckOption,
    SortGroupClause,
    GroupingSet,
    WindowClause,
    RowMarkClause,
    WithClause,
    InferClause,
    OnConflictClause,
    CtesearchClause,
    CtecycleClause,
    CommonTableExpr,
    MergeWhenClause,
    ReturningOption,
    ReturningClause,
    TriggerTransition,
    JsonOutput,
    JsonArgument,
    JsonFuncExpr,
    JsonTablePathSpec,
    JsonTable,
    JsonTableColumn,
    JsonKeyValue,
    JsonParseExpr,
    JsonScalarExpr,
    JsonSerializeExpr,
    JsonObjectConstructor,
    JsonArrayConstructor,
    JsonArrayQueryConstructor,
    JsonAggConstructor,
    JsonObjectAgg,
    JsonArrayAgg,
    RawStmt,
    InsertStmt,
    DeleteStmt,
    UpdateStmt,
    MergeStmt,
    SelectStmt,
    SetOperationStmt,
    ReturnStmt,
    PlassignStmt,
    CreateSchemaStmt,
    AlterTableStmt,
    AlterTableCmd,
    AtalterConstraint,
    ReplicaIdentityStmt,
    AlterCollationStmt,
    AlterDomainStmt,
    GrantStmt,
    ObjectWithArgs,
    AccessPriv,
    GrantRoleStmt,
    AlterDefaultPrivilegesStmt,
    CopyStmt,
    VariableSetStmt,
    VariableShowStmt,
    CreateStmt,
    Constraint,
    CreateTableSpaceStmt,
    DropTableSpaceStmt,
    AlterTableSpaceOptionsStmt,
    AlterTableMoveAllStmt,
    CreateExtensionStmt,
    AlterExtensionStmt,
    AlterExtensionContentsStmt,
    CreateFdwStmt,
    AlterFdwStmt,
    CreateForeignServerStmt,
    AlterForeignServerStmt,
    CreateForeignTableStmt,
    CreateUserMappingStmt,
    AlterUserMappingStmt,
    DropUserMappingStmt,
    ImportForeignSchemaStmt,
    CreatePolicyStmt,
    AlterPolicyStmt,
    CreateAmStmt,
    CreateTrigStmt,
    CreateEventTrigStmt,
    AlterEventTrigStmt,
    CreatePlangStmt,
    CreateRoleStmt,
    AlterRoleStmt,
    AlterRoleSetStmt,
    DropRoleStmt,
    CreateSeqStmt,
    AlterSeqStmt,
    DefineStmt,
    CreateDomainStmt,
    CreateOpClassStmt,
    CreateOpClassItem,
    CreateOpFamilyStmt,
    AlterOpFamilyStmt,
    DropStmt,
    TruncateStmt,
    CommentStmt,
    SecLabelStmt,
    DeclareCursorStmt,
    ClosePortalStmt,
    FetchStmt,
    IndexStmt,
    CreateStatsStmt,
    StatsElem,
    AlterStatsStmt,
    CreateFunctionStmt,
    FunctionParameter,
    AlterFunctionStmt,
    DoStmt,
    InlineCodeBlock,
    CallStmt,
    CallContext,
    RenameStmt,
    AlterObjectDependsStmt,
    AlterObjectSchemaStmt,
    AlterOwnerStmt,
    AlterOperatorStmt,
    AlterTypeStmt,
    RuleStmt,
    NotifyStmt,
    ListenStmt,
    UnlistenStmt,
    TransactionStmt,
    CompositeTypeStmt,
    CreateEnumStmt,
    CreateRangeStmt,
    AlterEnumStmt,
    ViewStmt,
    LoadStmt,
    CreatedbStmt,
    AlterDatabaseStmt,
    AlterDatabaseRefreshCollStmt,
    AlterDatabaseSetStmt,
    DropdbStmt,
    AlterSystemStmt,
    ClusterStmt,
    VacuumStmt,
    VacuumRelation,
    ExplainStmt,
    CreateTableAsStmt,
    RefreshMatViewStmt,
    CheckPointStmt,
    DiscardStmt,
    LockStmt,
    ConstraintsSetStmt,
    ReindexStmt,
    CreateConversionStmt,
    CreateCastStmt,
    CreateTransformStmt,
    PrepareStmt,
    ExecuteStmt,
    DeallocateStmt,
    DropOwnedStmt,
    ReassignOwnedStmt,
    AlterTsdictionaryStmt,
    AlterTsconfigurationStmt,
    PublicationTable,
    PublicationObjSpec,
    CreatePublicationStmt,
    AlterPublicationStmt,
    CreateSubscriptionStmt,
    AlterSubscriptionStmt,
    DropSubscriptionStmt,
    Integer,
    Float,
    Boolean,
    String,
    BitString,
    List,
    IntList,
    OidList,
    AConst,
}
